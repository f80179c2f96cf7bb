// Builds the dashboard into ../dist and the driver app into ../dist/driver,
// which the Go binary embeds.
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';

const out = new URL('../dist/', import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(out + '.keep', '');
await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  target: ['es2020'],
  platform: 'browser',
  outfile: out + 'app.js',
  loader: { '.png': 'dataurl', '.svg': 'dataurl' },
  logLevel: 'warning',
});
cpSync('src/index.html', out + 'index.html');
cpSync('src/favicon.svg', out + 'favicon.svg');

// The driver app, served at /driver/. Its service worker is a classic
// script (registered without type: 'module'), so it is bundled as one.
const common = { bundle: true, minify: true, sourcemap: false, target: ['es2020'], platform: 'browser', logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/driver/driver.js'], format: 'esm', outfile: out + 'driver/driver.js' });
await build({ ...common, entryPoints: ['src/driver/sw.js'], format: 'iife', outfile: out + 'driver/sw.js' });
for (const f of ['index.html', 'manifest.webmanifest', 'icon.svg']) cpSync('src/driver/' + f, out + 'driver/' + f);
