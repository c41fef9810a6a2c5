// Compiles every .py under a directory to CPython 3.13 bytecode with Pyodide (CPython 3.13 as
// WebAssembly), so the python3.13 Lambda runtime never compiles the function's modules at cold
// start. Called by infra/packaging.py: node infra/compile_bytecode.mjs DIR [DDIR]
import { loadPyodide } from "pyodide";

const [root, ddir = "/var/task"] = process.argv.slice(2);
if (!root) {
  console.error("usage: node compile_bytecode.mjs DIR [DDIR]");
  process.exit(2);
}

const pyodide = await loadPyodide({ stdout: console.log, stderr: console.error });
pyodide.FS.mkdir("/artifact");
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root }, "/artifact");
pyodide.globals.set("ddir", ddir);
const result = pyodide.runPython(`
import compileall, importlib.util, json, py_compile, sys
# UNCHECKED_HASH: Lambda's unzip need not keep mtimes, and the code directory never changes.
ok = compileall.compile_dir(
    "/artifact",
    quiet=1,
    ddir=ddir,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
json.dumps({
    "ok": bool(ok),
    "version": sys.version.split()[0],
    "magic": importlib.util.MAGIC_NUMBER.hex(),
})
`);
console.log(result);
process.exit(JSON.parse(result).ok ? 0 : 1);
