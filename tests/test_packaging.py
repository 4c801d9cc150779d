import ast
import configparser
import importlib.metadata
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _names(requirements):
    """Normalised distribution names of setup.cfg requirement lines."""
    return {re.split(r"[<>=!~;\[ ]", line.strip())[0].lower().replace("_", "-")
            for line in requirements.strip().splitlines() if line.strip()}


def _imports():
    """``{top-level module: imported at module level?}`` over the package's sources."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "deepam_tf")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(folder, name)) as handle:
                tree = ast.parse(handle.read())
            stack = [(node, False) for node in tree.body]
            while stack:
                node, in_function = stack.pop()
                in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                else:
                    modules = []
                for module in modules:
                    top = module.split(".")[0]
                    found[top] = found.get(top, False) or not in_function
                stack += [(child, in_function) for child in ast.iter_child_nodes(node)]
    return found


def test_every_third_party_import_is_a_declared_dependency():
    # A module the package imports but setup.cfg does not name works here only while some
    # other package happens to pull it in (imageio and Pillow came through scikit-image).
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    core = _names(config["options"]["install_requires"])
    extras = set().union(*(_names(value) for value in config["options.extras_require"].values()))
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, at_module_level in sorted(_imports().items()):
        if module in sys.stdlib_module_names or module == "deepam_tf":
            continue
        names = {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
        # Imported on use only (inside a function): an optional extra may provide it.
        allowed = core if at_module_level else core | extras
        if not names & allowed:
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in setup.cfg: {missing}"
