"""The package's layers and sizes: imports go down, no cycle, no oversized part.

Strategy: every module of ``scgi_twisted`` (and the ``twistd`` plugin file) is parsed
with :mod:`ast`, never imported, and every import it holds is collected, at module
level and inside functions alike.  :data:`LAYERS` writes the order down; a module
missing from it fails :meth:`LayerTests.test_everyModuleHasALayer`, so a new module
needs a decision about where it belongs.  The helpers are checked on small sources
first, so that a checker that found nothing cannot pass for a clean package.
:class:`SizeTests` keeps every module under :data:`MAX_MODULE_LINES` lines and every
class under :data:`MAX_CLASS_LINES`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import scgi_twisted

PACKAGE_NAME = "scgi_twisted"
PACKAGE = Path(scgi_twisted.__file__).parent
PLUGIN = PACKAGE.parent / "twisted" / "plugins" / "scgi_twisted_plugin.py"

LAYERS: dict[str, int] = {
    # 0: the protocol's errors.
    "_errors": 0,
    # 1: the sans-I/O parser and encoders, server side and client side.
    "_pairs": 1,
    "_sansio": 1,
    "_clientsansio": 1,
    "_clientresponse": 1,
    # 2: the CGI environ mapping; the metrics' plain counts.
    "_environ": 2,
    "_metrics": 2,
    # 3: one connection on Twisted: the channel and its parts; the client protocol.
    # _internals, the seam to Twisted's private names, imports no module of the
    # package at all (tests/test_internals.py checks): it is below the channel.
    "_internals": 3,
    "_bodies": 3,
    "_streaming": 3,
    "_traversal": 3,
    "_upload": 3,
    "_response": 3,
    "_config": 3,
    "_connection": 3,
    "_channel": 3,
    "_request": 3,
    "_clientendpoint": 3,
    "_clientprotocol": 3,
    "_client": 3,
    "cli": 3,
    "client": 3,
    "_memory": 3,
    # 4: the site, what it guards its listeners with, and the resources served on
    # it; the package's public names (``__init__``) re-export this layer and below.
    "_descriptors": 4,
    "_deadlines": 4,
    "_accesslog": 4,
    "_site": 4,
    "_defaultpage": 4,
    "offload": 4,
    "__init__": 4,
    # The Prometheus exposition of a site's counts (prometheus_client inside).
    "metrics": 4,
    # 5: the service of ``twistd scgi``: options, listeners, systemd, the service.
    "_stopping": 5,
    "_systemd": 5,
    "_options": 5,
    "_service": 5,
    # 6: one worker process of ``--workers``; 7: their supervisor.
    "_worker": 6,
    "_workers": 7,
    # 8: entry points that nothing in the package imports.
    "tap": 8,
    "testing": 8,
    "pytest_plugin": 8,
}
"""Each module of the package (by its name in ``scgi_twisted``) and its layer: a
module may import only modules of its own layer or a lower one."""

PLUGIN_LAYER = 9
"""The ``twistd`` plugin file, above everything: it names ``scgi_twisted.tap`` by
string and imports nothing of the package."""

EXAMPLE_MODULES = {"tap", "_site", "_worker", "__init__"}
"""The modules of the small sources the helpers are checked on."""

MAX_MODULE_LINES = 700
"""The most lines a module of the package may have."""

MAX_CLASS_LINES = 400
"""The most lines a class may span, from its ``class`` line to its last line."""

NO_TWISTED = (
    "_errors",
    "_pairs",
    "_sansio",
    "_clientsansio",
    "_clientresponse",
    "_environ",
    "_metrics",
)
"""The sans-I/O modules: they import nothing from Twisted (or zope.interface)."""


def packageModules() -> dict[str, Path]:
    """Return every module of the package, by name, with its file."""
    return {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}


def importedNames(tree: ast.AST) -> list[tuple[str, ast.stmt | ast.expr]]:
    """Return the absolute names ``tree`` imports, each with its node.

    ``from . import tap`` in a module of the package gives ``scgi_twisted.tap``;
    ``from .tap import Options`` gives ``scgi_twisted.tap.Options``, which
    :func:`packageTargets` reduces to the module.  Calls of ``__import__`` or
    ``importlib.import_module`` with a string count as imports of that string.

    :param tree: the parsed module.
    """
    names: list[tuple[str, ast.stmt | ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((alias.name, node) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Every module sits directly in the package: level 1 is the package.
                base = PACKAGE_NAME
                if node.module:
                    base = f"{base}.{node.module}"
            else:
                base = node.module or ""
            names.extend((f"{base}.{alias.name}", node) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _calledName(node.func) in {"__import__", "import_module"}
        ):
            names.append((node.args[0].value, node))
    return names


def _calledName(function: ast.expr) -> str:
    """Return the name a call calls: ``f`` for ``f()`` and ``m.f()``."""
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return ""


def packageTargets(name: str, modules: set[str]) -> str | None:
    """Return the package module an imported name lands in, or ``None`` if outside.

    :param name: an absolute imported name, such as ``scgi_twisted.tap.Options``.
    :param modules: the names of the package's modules.
    """
    parts = name.split(".")
    if parts[0] != PACKAGE_NAME:
        return None
    if len(parts) > 1 and parts[1] in modules:
        return parts[1]
    return "__init__"


def packageImports(
    source: str, module: str, modules: set[str]
) -> list[tuple[str, ast.stmt | ast.expr]]:
    """Return the package modules ``source`` imports, each with its statement."""
    tree = ast.parse(source)
    found = []
    for name, statement in importedNames(tree):
        target = packageTargets(name, modules)
        if target is not None and target != module:
            found.append((target, statement))
    return found


def findCycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle of ``graph`` (its first module repeated at the end).

    :param graph: each module and the modules it imports.
    :returns: the cycle, or ``None`` if the graph has none.
    """
    done: set[str] = set()
    path: list[str] = []
    onPath: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        onPath.add(node)
        for target in sorted(graph.get(node, ())):
            if target in onPath:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle is not None:
                    return cycle
        path.pop()
        onPath.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


def packageGraph() -> dict[str, set[str]]:
    """Return each package module and the package modules it imports."""
    modules = packageModules()
    return {
        name: {
            target
            for target, _ in packageImports(
                path.read_text(encoding="utf-8"), name, set(modules)
            )
        }
        for name, path in modules.items()
    }


def classSpans(source: str) -> list[tuple[str, int, int]]:
    """Return every class of ``source`` (nested ones too) with its first line and size.

    :param source: a module's text.
    :returns: ``(name, line of the class statement, lines from it to the class's
        last line)`` for each class, in the order of the source.
    """
    spans = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            end = node.end_lineno
            assert end is not None
            spans.append((node.name, node.lineno, end - node.lineno + 1))
    return sorted(spans, key=lambda span: span[1])


def moduleLines(source: str) -> int:
    """Return the number of lines of a module's text, as ``wc -l`` counts them."""
    return len(source.splitlines())


class HelperTests(SynchronousTestCase):
    """The checkers see what they must, so that finding nothing means something."""

    def test_importForms(self) -> None:
        """Relative, absolute, package and in-function imports all land in modules."""
        source = (
            "from __future__ import annotations\n"
            "import os\n"
            "from . import tap\n"
            "from ._site import SCGISite\n"
            "import scgi_twisted._site\n"
            "from scgi_twisted import SCGISite\n"
            "def later():\n"
            "    from .tap import Options\n"
            "    importlib.import_module('scgi_twisted._site')\n"
        )
        targets = [
            target for target, _ in packageImports(source, "_worker", EXAMPLE_MODULES)
        ]
        self.assertEqual(targets, ["tap", "_site", "_site", "__init__", "tap", "_site"])

    def test_ownModuleIgnored(self) -> None:
        """A module naming itself (``from . import _worker`` in it) is no edge."""
        self.assertEqual(
            packageImports("from . import _worker\n", "_worker", EXAMPLE_MODULES), []
        )

    def test_cycleFound(self) -> None:
        """A cycle through three modules is found and named in order."""
        graph = {"tap": {"_workers"}, "_workers": {"_worker"}, "_worker": {"tap"}}
        self.assertEqual(findCycle(graph), ["_worker", "tap", "_workers", "_worker"])

    def test_classSpans(self) -> None:
        """A class spans from its ``class`` line to its last line; nested ones count."""
        source = (
            "import os\n"
            "\n"
            "@decorated\n"
            "class A:\n"
            '    """Doc."""\n'
            "\n"
            "    class B:\n"
            "        x = 1\n"
            "\n"
            "    def f(self):\n"
            "        return 2\n"
            "\n"
            "\n"
            "y = 3\n"
        )
        self.assertEqual(classSpans(source), [("A", 4, 8), ("B", 7, 2)])
        self.assertEqual(moduleLines(source), 14)
        self.assertEqual(moduleLines(source + "z = 4"), 15)

    def test_noCycleInATree(self) -> None:
        """Shared lower modules (a diamond) are no cycle."""
        graph = {"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}
        self.assertIsNone(findCycle(graph))


class SizeTests(SynchronousTestCase):
    """No module is too long to read, no class too large to hold in mind."""

    def test_modulesAtMost700Lines(self) -> None:
        """Every module of the package has at most :data:`MAX_MODULE_LINES` lines."""
        modules = packageModules()
        self.assertGreater(len(modules), 20)
        for name, path in modules.items():
            lines = moduleLines(path.read_text(encoding="utf-8"))
            self.assertLessEqual(
                lines,
                MAX_MODULE_LINES,
                f"scgi_twisted/{name}.py has {lines} lines: split it (at most "
                f"{MAX_MODULE_LINES})",
            )

    def test_classesAtMost400Lines(self) -> None:
        """Every class of the package spans at most :data:`MAX_CLASS_LINES` lines."""
        checked = 0
        for name, path in packageModules().items():
            for cls, line, size in classSpans(path.read_text(encoding="utf-8")):
                checked += 1
                self.assertLessEqual(
                    size,
                    MAX_CLASS_LINES,
                    f"scgi_twisted/{name}.py:{line}: class {cls} spans {size} lines: "
                    f"split it (at most {MAX_CLASS_LINES})",
                )
        # The walk does find classes: the package is made of them.
        self.assertGreater(checked, 20)


class LayerTests(SynchronousTestCase):
    """The package keeps the order of :data:`LAYERS`."""

    def test_everyModuleHasALayer(self) -> None:
        """Every module of the package is in the table, and the table has no other."""
        modules = set(packageModules())
        for name in sorted(modules - set(LAYERS)):
            self.fail(
                f"scgi_twisted/{name}.py has no layer: add it to LAYERS in "
                "tests/test_layers.py, at the layer of what it is (at least the "
                "highest layer of the package modules it imports)"
            )
        for name in sorted(set(LAYERS) - modules):
            self.fail(f"LAYERS names {name!r}, which is no longer a module: remove it")

    def test_importsGoDown(self) -> None:
        """Each module imports only modules of its own layer or a lower one."""
        modules = packageModules()
        checked = 0
        for name, path in modules.items():
            layer = LAYERS.get(name)
            if layer is None:
                continue  # test_everyModuleHasALayer says so
            source = path.read_text(encoding="utf-8")
            for target, statement in packageImports(source, name, set(modules)):
                checked += 1
                targetLayer = LAYERS.get(target)
                if targetLayer is None:
                    continue
                self.assertLessEqual(
                    targetLayer,
                    layer,
                    f"scgi_twisted/{name}.py:{statement.lineno} (layer {layer}) "
                    f"imports scgi_twisted.{target} (layer {targetLayer}): imports go "
                    "to lower layers only",
                )
        # The walk does find imports: the package is made of them.
        self.assertGreater(checked, 20)

    def test_noCycle(self) -> None:
        """No chain of imports between the package's modules comes back to its start."""
        cycle = findCycle(packageGraph())
        self.assertIsNone(cycle, f"import cycle: {' -> '.join(cycle or [])}")

    def test_packageImportsAtModuleLevel(self) -> None:
        """Every import of a package module is a top-level statement.

        An import inside a function or under ``if TYPE_CHECKING:`` is how an import
        cycle is hidden from import time; with the layers kept, none is needed.
        """
        modules = packageModules()
        for name, path in modules.items():
            source = path.read_text(encoding="utf-8")
            topLevel = {
                (node.lineno, node.col_offset) for node in ast.parse(source).body
            }
            for target, node in packageImports(source, name, set(modules)):
                self.assertIn(
                    (node.lineno, node.col_offset),
                    topLevel,
                    f"scgi_twisted/{name}.py:{node.lineno} imports "
                    f"scgi_twisted.{target} inside a function or block: import it at "
                    "the top of the module",
                )

    def test_sansIOImportsNoTwisted(self) -> None:
        """The sans-I/O modules import nothing from Twisted or zope.interface."""
        modules = packageModules()
        for name in NO_TWISTED:
            path = modules[name]
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            imported = [imported for imported, _ in importedNames(tree)]
            # The walk does see imports: every module starts with this one.
            self.assertIn("__future__.annotations", imported, path.name)
            for module in imported:
                top = module.split(".", 1)[0]
                self.assertNotIn(top, {"twisted", "zope"}, f"{path.name}: {module}")

    def test_pluginImportsNothingOfThePackage(self) -> None:
        """The plugin file imports no module of the package; it names tap, above it.

        Listing plugins (``twistd --help``) imports every plugin file: an import of
        the package there would load it for every ``twistd`` command.
        """
        tree = ast.parse(PLUGIN.read_text(encoding="utf-8"))
        imported = [imported for imported, _ in importedNames(tree)]
        self.assertIn("twisted.application.service.ServiceMaker", imported)
        self.assertEqual(
            [
                name
                for name in imported
                if packageTargets(name, set(LAYERS)) is not None
            ],
            [],
        )
        named = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(f"{PACKAGE_NAME}.")
        ]
        self.assertEqual(named, ["scgi_twisted.tap"])
        self.assertLess(LAYERS["tap"], PLUGIN_LAYER)
