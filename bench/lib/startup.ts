/**
 * W0, start-up: the wall time of a whole process that fetches one image from the local origin, from spawn to exit.
 * What a user feels on every small job, and the floor under every other workload's wall-clock rate.
 *
 * Each round runs, one after another (alternating, so a noisy moment hits them all): `node -e 0` (the runtime's own
 * floor), `imgdl get` of a one-URL list, `imgdl run flags` for one country (a TypeScript plugin: its metadata, then
 * its GIF), and the seeds' way in Python (asyncio + aiohttp, one URL) when python3-aiohttp is installed. Every run
 * writes into a new folder and a new state folder, so nothing is skipped. Reported: median (min-max) per command.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pinned, spread } from './pin.ts';
import { runMeasured, type Command } from './proc.ts';
import type { TargetCheck } from './results.ts';
import { imgdlCli, pythonModuleMissing, PYTHON } from './tools.ts';

/** The start-up target of issue 12: one local URL, spawn to exit. */
export const STARTUP_TARGET_S = 0.45;

export type StartupCase = 'node -e 0' | 'imgdl get (1 URL)' | 'imgdl run flags (1 flag)' | 'aiohttp (1 URL)';

export interface StartupRun {
  case: StartupCase;
  round: number;
  seconds: number;
  cpuSeconds: number | null;
  peakRssMb: number;
  ok: boolean;
  pinned: boolean;
}

const AIOHTTP_ONE = `
import asyncio, sys, aiohttp
async def main(url, path):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as r:
            r.raise_for_status()
            body = await r.read()
    with open(path, 'wb') as f:
        f.write(body)
asyncio.run(main(sys.argv[1], sys.argv[2]))
`;

export async function runStartup(opts: {
  repoRoot: string;
  tmp: string;
  base: string;
  rounds: number;
  cpu?: number;
}): Promise<{ runs: StartupRun[]; skipped: string[] }> {
  const dir = join(opts.tmp, `startup${opts.cpu === undefined ? '' : '-pinned'}`);
  await mkdir(dir, { recursive: true });
  const url = `${opts.base}/img/1.png`;
  await writeFile(join(dir, 'one.txt'), `${url}\n`);
  await writeFile(join(dir, 'one.py'), AIOHTTP_ONE);
  const skipped: string[] = [];
  const pythonMissing = await pythonModuleMissing('aiohttp', 'python3-aiohttp')();
  if (pythonMissing) skipped.push(`aiohttp (1 URL): ${pythonMissing}`);
  const cli = imgdlCli(opts.repoRoot);
  const commands = (round: number): Array<[StartupCase, Command]> => {
    const out = (name: string) => join(dir, `${name}-${round}`);
    const list: Array<[StartupCase, Command]> = [
      ['node -e 0', { cmd: process.execPath, args: ['-e', '0'] }],
      ['imgdl get (1 URL)', { cmd: process.execPath, args: [cli, 'get', join(dir, 'one.txt'), '--out', out('get'), '--storage', out('get-state'), '--quiet'], cwd: dir }],
      [
        'imgdl run flags (1 flag)',
        {
          cmd: process.execPath,
          args: [cli, 'run', 'flags', '--codes', 'cn', '--base-url', `${opts.base}/data/flags`, '--out', out('flags'), '--storage', out('flags-state'), '--quiet'],
          cwd: dir,
        },
      ],
    ];
    if (!pythonMissing) list.push(['aiohttp (1 URL)', { cmd: PYTHON, args: [join(dir, 'one.py'), url, out('aiohttp.png')] }]);
    return list;
  };
  const runs: StartupRun[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const [name, command] of commands(round)) {
      const r = await runMeasured(opts.cpu === undefined ? command : pinned(command, opts.cpu), 30_000, dir);
      runs.push({ case: name, round, seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssMb: r.peakRssMb, ok: r.exitCode === 0, pinned: opts.cpu !== undefined });
    }
  }
  return { runs, skipped };
}

function fmt(s: { median: number; min: number; max: number } | null, digits = 2): string {
  return s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})` : 'n/a';
}

export function startupTable(runs: StartupRun[]): string {
  const lines = ['W0 start-up: one image from the local origin, spawn to exit; median (min-max) of the rounds', '  command                    runs  wall s              CPU s               peak RSS MB'];
  for (const pin of [false, true]) {
    const mine = runs.filter((r) => r.pinned === pin);
    if (mine.length === 0) continue;
    if (pin) lines.push('  pinned (taskset, one CPU):');
    for (const name of [...new Set(mine.map((r) => r.case))]) {
      const of = mine.filter((r) => r.case === name);
      const failed = of.filter((r) => !r.ok).length;
      lines.push(
        `  ${name.padEnd(26)} ${String(of.length).padStart(4)}  ${fmt(spread(of.map((r) => r.seconds))).padEnd(19)} ` +
          `${fmt(spread(of.flatMap((r) => (r.cpuSeconds === null ? [] : [r.cpuSeconds])))).padEnd(19)} ${fmt(spread(of.map((r) => r.peakRssMb)), 0)}` +
          (failed > 0 ? `  (${failed} failed)` : ''),
      );
    }
  }
  return lines.join('\n');
}

/** Start-up ≤ 0.45 s for `get` and for `run` (pinned figures when there are, as they are the steadier). */
export function startupTargets(runs: StartupRun[]): TargetCheck[] {
  const pinnedRuns = runs.filter((r) => r.pinned);
  const use = pinnedRuns.length > 0 ? pinnedRuns : runs;
  return (['imgdl get (1 URL)', 'imgdl run flags (1 flag)'] as const).map((name) => {
    const of = use.filter((r) => r.case === name);
    const target = `W0 ${name} start-up ≤ ${STARTUP_TARGET_S} s${pinnedRuns.length > 0 ? ' (pinned)' : ''}`;
    if (of.length === 0) return { target, verdict: 'n/a', detail: 'not run' };
    if (of.some((r) => !r.ok)) return { target, verdict: 'MISS', detail: `${of.filter((r) => !r.ok).length} of ${of.length} runs failed` };
    const s = spread(of.map((r) => r.seconds))!;
    return { target, verdict: s.median <= STARTUP_TARGET_S ? 'PASS' : 'MISS', detail: `median ${s.median.toFixed(2)} s (${s.min.toFixed(2)}-${s.max.toFixed(2)})` };
  });
}
