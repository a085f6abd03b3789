// Copies the browser builds of the front-end packages into static/vendor/ (served by the portal).
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";

const files = {
  "@xterm/xterm/lib/xterm.mjs": "xterm/xterm.mjs",
  "@xterm/xterm/css/xterm.css": "xterm/xterm.css",
  "@xterm/addon-fit/lib/addon-fit.mjs": "xterm/addon-fit.mjs",
};
for (const [from, to] of Object.entries(files)) {
  const target = join("static", "vendor", to);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join("node_modules", from), target);
}
console.log(`copied ${Object.keys(files).length} front-end files into static/vendor/`);
