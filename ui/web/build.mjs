// Builds the dashboard into ../dist, the fleet page of `depot hq` beside it
// (fleet.html, fleet.js, fleet.css), the admin page (admin.html, admin.js,
// admin.css) and the driver app into ../dist/driver,
// which the Go binary embeds.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { SHELL } from './src/driver/shell.js';

const out = new URL('../dist/', import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(out + '.keep', '');
// page bundles one page's script as an ES module into dist/.
const page = (entry, outfile) => build({
  entryPoints: [entry],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  target: ['es2020'],
  platform: 'browser',
  outfile: out + outfile,
  loader: { '.png': 'dataurl', '.svg': 'dataurl' },
  logLevel: 'warning',
});

// The dashboard.
await page('src/main.js', 'app.js');
cpSync('src/index.html', out + 'index.html');
cpSync('src/favicon.svg', out + 'favicon.svg');

// The fleet page, which `depot hq` serves at / (docs/fleet.md).
await page('src/fleet.js', 'fleet.js');
cpSync('src/fleet.html', out + 'fleet.html');

// The admin page, at /admin (docs/admin.md).
await page('src/admin.js', 'admin.js');
cpSync('src/admin.html', out + 'admin.html');

// The driver app, served at /driver/. Its service worker is a classic
// script (registered without type: 'module'), so it is bundled as one,
// last: it carries a hash of the built shell files (__SHELL_VERSION__), so
// that each build's shell is cached, and replaced, as one (sw.js).
const common = { bundle: true, minify: true, sourcemap: false, target: ['es2020'], platform: 'browser', logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/driver/driver.js'], format: 'esm', outfile: out + 'driver/driver.js' });
for (const f of ['index.html', 'manifest.webmanifest', 'icon.svg']) cpSync('src/driver/' + f, out + 'driver/' + f);
const h = createHash('sha256');
for (const f of SHELL.filter((p) => p !== '')) h.update(`${f}\0`).update(readFileSync(out + 'driver/' + f));
await build({ ...common, entryPoints: ['src/driver/sw.js'], format: 'iife', outfile: out + 'driver/sw.js',
  define: { __SHELL_VERSION__: JSON.stringify(h.digest('hex').slice(0, 16)) } });
