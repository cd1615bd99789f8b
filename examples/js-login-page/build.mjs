// Bundles main.js and the client into dist/main.js, one ES module for the browser.
// GATEWAY_URL (the gateway's origin, as the browser reaches it) is fixed at build
// time, so no URL or query string of the page can send a password elsewhere.
import { build } from "esbuild";

const gateway = process.env.GATEWAY_URL ?? "http://127.0.0.1:8080";
await build({
  entryPoints: ["main.js"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: "dist/main.js",
  define: { GATEWAY_URL: JSON.stringify(gateway) },
});
console.log(`dist/main.js: the page signs in at ${gateway}`);
