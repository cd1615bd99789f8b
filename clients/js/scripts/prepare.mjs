// npm's `prepare` step: builds dist/ with the TypeScript compiler pinned in
// package-lock.json. npm runs it after `npm ci` here, before `npm pack`, and
// when another project installs this package from a git URL (npm installs the
// devDependencies first) or from a path (`npm install ../authsvc/clients/js`:
// npm links the folder and runs `prepare` in it without installing anything
// there). In that last case, when the compiler is absent, this installs the
// locked devDependencies here first (`npm ci --ignore-scripts`), so an unbuilt
// clone installs by path like a built one.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const tsc = join(here, "node_modules", "typescript", "bin", "tsc");

function run(command, args) {
  // npm passes its own configuration down as npm_config_* variables (the
  // installing project's prefix among them); this package's steps use none.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_config_")
      || ["npm_config_cache", "npm_config_registry", "npm_config_userconfig"].includes(name.toLowerCase())));
  const result = spawnSync(command, args, { cwd: here, stdio: "inherit", env });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!existsSync(tsc)) {
  console.error("@authsvc/client: installing the build tools (npm ci --ignore-scripts) to build dist/");
  run(process.platform === "win32" ? "npm.cmd" : "npm",
      ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]);
}
run(process.execPath, [tsc, "-p", "tsconfig.json"]);
