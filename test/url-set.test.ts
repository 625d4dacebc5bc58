// UrlSet: the scratch set of URLs a distributed run's coordinator dedupes its inputs with, on disk (bounded memory).
// Run: node --import tsx --test test/url-set.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from './helpers/cli.ts';
import { UrlSet } from '../src/storage/url-set.ts';

test('each URL is new once, then seen again; URLs recorded by an earlier run are `earlier` the first time only', async () => {
  const file = path.join(tmpDir('imgdl-url-set-'), 'urls.sqlite');
  fs.writeFileSync(file, 'left by a crashed process');
  const set = await UrlSet.create(file);
  set.addEarlier('https://a.example/old.png');
  set.addEarlier('https://a.example/old.png');
  assert.equal(set.isEarlier('https://a.example/old.png'), true);
  assert.equal(set.isEarlier('https://a.example/1.png'), false);
  assert.deepEqual(
    ['https://a.example/1.png', 'https://a.example/2.png', 'https://a.example/1.png', 'https://a.example/old.png', 'https://a.example/old.png'].map((u) => set.see(u)),
    ['new', 'new', 'again', 'earlier', 'again'],
  );
  // More than one transaction's worth (10,000 statements each), across the batch boundary.
  let fresh = 0;
  for (let i = 0; i < 25_000; i++) if (set.see(`https://b.example/${i % 20_000}.png`) === 'new') fresh++;
  assert.equal(fresh, 20_000);
  assert.equal(set.isEarlier('https://a.example/old.png'), true, 'still recorded as earlier once seen');
  set.close();
  assert.deepEqual(fs.readdirSync(path.dirname(file)), [], 'the scratch file is removed');
});
