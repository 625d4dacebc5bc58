/**
 * W4: imgdl on a very long list, in the background. Records the time to the first saved image,
 * peak RSS and state size, interrupts it with SIGINT after a window, then re-runs it on the same
 * state and times how long it takes to save the next new image (the resume open time).
 */
import { mkdir, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { listImages, NewImageWatch, tally } from './files.ts';
import { killGroup, startMeasured, waitExit, type Command, type RunResult } from './proc.ts';
import type { ScaleRun } from './results.ts';
import { lastWords } from './throughput.ts';
import type { RunContext } from './tools.ts';

const SIGINT_GRACE_MS = 10_000;

export interface ScaleJob {
  command: (ctx: RunContext) => Command;
  ctx: RunContext;
  urls: number;
  /** The first run goes on this long (longer if it has not saved an image yet). */
  windowMs: number;
  /** How long the first run may take to save its first image, and the resumed run its next one. */
  imageLimitMs: number;
}

interface Phase {
  result: RunResult;
  /** Seconds from spawn to the first new image; null if none came. */
  firstImage: number | null;
  /** Seconds from SIGINT to exit; null when it was not interrupted or had to be killed. */
  sigintExit: number | null;
  exitedEarly: boolean;
  /** Seconds from spawn to SIGINT, or to its own exit. */
  ranSeconds: number;
}

/**
 * Runs the command for at least `minMs` and until it has saved a new image (but no longer than
 * `limitMs`, or until it exits), then SIGINT, then SIGKILL if it does not stop.
 */
async function phase(job: ScaleJob, known: Set<string>, minMs: number, limitMs: number): Promise<Phase> {
  const watch = new NewImageWatch(job.ctx.outDir, known);
  await watch.start();
  const measured = startMeasured(job.command(job.ctx), limitMs + 2 * SIGINT_GRACE_MS, job.ctx.scratchDir);
  let firstImage: number | null = null;
  void watch.seen.then((at) => (firstImage = (at - measured.startedAt) / 1000));

  const timers = new AbortController();
  const pause = (ms: number): Promise<'stop'> =>
    sleep(ms, undefined, { signal: timers.signal }).then(
      () => 'stop' as const,
      () => 'stop' as const,
    );
  const exited = measured.done.then(() => 'exited' as const);
  const enough = Promise.all([pause(minMs), Promise.race([watch.seen, pause(limitMs)])]).then(() => 'stop' as const);
  const exitedEarly = (await Promise.race([exited, enough])) === 'exited';
  const ranSeconds = (performance.now() - measured.startedAt) / 1000;
  timers.abort();

  let sigintExit: number | null = null;
  if (!exitedEarly) {
    const sentAt = performance.now();
    killGroup(measured.child, 'SIGINT');
    if (await waitExit(measured.child, SIGINT_GRACE_MS)) sigintExit = (performance.now() - sentAt) / 1000;
    else killGroup(measured.child, 'SIGKILL');
  }
  const result = await measured.done;
  watch.close();
  return { result, firstImage, sigintExit, exitedEarly, ranSeconds };
}

function failure(job: ScaleJob, first: Phase): string | null {
  const { result } = first;
  if (first.exitedEarly && result.exitCode !== 0) {
    const words = lastWords(result);
    return `exit ${result.exitCode ?? result.signal}${words ? `: ${words}` : ''}`;
  }
  if (first.firstImage === null) return `no image saved within ${Math.max(job.windowMs, job.imageLimitMs) / 1000} s`;
  if (!first.exitedEarly && first.sigintExit === null) return 'ignored SIGINT (killed)';
  return null;
}

export async function runScale(job: ScaleJob): Promise<ScaleRun> {
  const { ctx } = job;
  await rm(ctx.outDir, { recursive: true, force: true });
  await rm(ctx.storageDir, { recursive: true, force: true });
  await mkdir(ctx.outDir, { recursive: true });
  await mkdir(ctx.storageDir, { recursive: true });

  const first = await phase(job, new Set(), job.windowMs, Math.max(job.windowMs, job.imageLimitMs));
  const saved = await tally(ctx.outDir);
  const state = await tally(ctx.storageDir);
  const run: ScaleRun = {
    workload: 'W4',
    tool: 'imgdl',
    status: 'ok',
    urls: job.urls,
    windowSeconds: Math.round(first.ranSeconds * 10) / 10,
    firstImageSeconds: first.firstImage,
    imagesInWindow: saved.images,
    stateBytes: state.allBytes,
    peakRssMb: first.result.peakRssMb,
    sigintExitSeconds: first.sigintExit,
    resumeOpenSeconds: null,
  };
  const why = failure(job, first);
  if (why) {
    run.status = 'failed';
    run.reason = why;
  }

  if (why && first.firstImage === null) run.resumeNote = 'not tried: the first run saved nothing';
  else if (first.exitedEarly && first.result.exitCode === 0) run.resumeNote = 'not tried: the first run finished the list';
  else {
    const resumed = await phase(job, await listImages(ctx.outDir), 0, job.imageLimitMs);
    run.resumeOpenSeconds = resumed.firstImage;
    run.peakRssMb = Math.max(run.peakRssMb, resumed.result.peakRssMb);
    if (resumed.firstImage === null) {
      run.resumeNote = `no new image within ${job.imageLimitMs / 1000} s`;
      if (resumed.exitedEarly && resumed.result.exitCode !== 0) run.resumeNote += `; exit ${resumed.result.exitCode}`;
    }
  }

  await rm(ctx.outDir, { recursive: true, force: true });
  await rm(ctx.storageDir, { recursive: true, force: true });
  return run;
}
