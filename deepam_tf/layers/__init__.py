"""Keras layers of one DeepAM stage (paper Fig. 3)."""

from deepam_tf.layers.aggregation import AggregationNetwork
from deepam_tf.layers.conditioning import NoiseLevelMap
from deepam_tf.layers.gamma import GammaNetwork
from deepam_tf.layers.guidance import GuidanceNetwork
from deepam_tf.layers.reconstruction import Reconstruction

__all__ = ["AggregationNetwork", "GammaNetwork", "GuidanceNetwork", "NoiseLevelMap", "Reconstruction"]
