// Copies the browser builds of the front-end packages into static/vendor/ (served by the portal).
import { copyFileSync, cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";

const files = {
  "@xterm/xterm/lib/xterm.mjs": "xterm/xterm.mjs",
  "@xterm/xterm/css/xterm.css": "xterm/xterm.css",
  "@xterm/addon-fit/lib/addon-fit.mjs": "xterm/addon-fit.mjs",
};
// Whole directories: Monaco's prebuilt AMD build loads its modules and workers by path.
const directories = {
  "monaco-editor/min/vs": "monaco/vs",
};
for (const [from, to] of Object.entries(files)) {
  const target = join("static", "vendor", to);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join("node_modules", from), target);
}
for (const [from, to] of Object.entries(directories)) {
  const target = join("static", "vendor", to);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  cpSync(join("node_modules", from), target, { recursive: true });
}
console.log(
  `copied ${Object.keys(files).length} files and ${Object.keys(directories).length} directories into static/vendor/`,
);
