// A plugin compiled once is taken from its cache while nothing it was made of changed, and compiled again when a
// file it imports changes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { compilePlugin } from '../src/plugin/compile.ts';

test('a compiled plugin is reused until the plugin or a file it imports changes', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgdl-compile-'));
  try {
    const plugin = path.join(dir, 'my-site.ts');
    const helper = path.join(dir, 'helper.ts');
    fs.writeFileSync(helper, "export const greeting: string = 'one';\n");
    fs.writeFileSync(plugin, "import { greeting } from './helper.ts';\nexport default { name: 'my-site', greeting };\n");
    const first = await compilePlugin(plugin);
    assert.equal(((await import(first)) as { default: { greeting: string } }).default.greeting, 'one');
    // Nothing changed: the same module, from the cache (its manifest names it).
    assert.equal(await compilePlugin(plugin), first);
    const manifests = fs.readdirSync(path.join(os.tmpdir(), 'imgdl-plugins')).filter((n) => n.startsWith('my-site.ts-') && n.endsWith('.json'));
    assert.ok(manifests.length >= 1, 'a manifest beside the compiled module');
    // A local import changed (other size): compiled again, with the new value.
    fs.writeFileSync(helper, "export const greeting: string = 'two, longer';\n");
    const second = await compilePlugin(plugin);
    assert.notEqual(second, first);
    assert.equal(((await import(second)) as { default: { greeting: string } }).default.greeting, 'two, longer');
    // The plugin itself changed, same size, later time: compiled again too.
    const text = fs.readFileSync(plugin, 'utf8').replace("'my-site'", "'my-sitf'");
    fs.writeFileSync(plugin, text);
    fs.utimesSync(plugin, new Date(), new Date(Date.now() + 5000));
    const third = await compilePlugin(plugin);
    assert.notEqual(third, second);
    assert.equal(((await import(third)) as { default: { name: string } }).default.name, 'my-sitf');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
