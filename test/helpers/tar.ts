// Reading WebDataset tar shards back in tests (tar-stream, the package the engine writes them with).
import fs from 'node:fs';
import tar from 'tar-stream';

/** Every member of a tar file: name → bytes (a name twice is an error). */
export async function tarMembers(file: string): Promise<Map<string, Buffer>> {
  const members = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (members.has(header.name)) reject(new Error(`${header.name} twice in ${file}`));
        members.set(header.name, Buffer.concat(chunks));
        next();
      });
    });
    extract.on('finish', () => resolve());
    extract.on('error', reject);
  });
  fs.createReadStream(file).pipe(extract);
  await done;
  return members;
}
