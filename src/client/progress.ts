import cliProgress from 'cli-progress';
import { bytes, duration } from './format.js';

export interface ProgressSample {
  done: number;
  total: number;
  /** Bytes per second as measured by the server; measured here from the samples when absent. */
  rate?: number;
  /** e.g. "queued" while the job waits for a slot. */
  note?: string;
}

export interface ProgressView {
  update(s: ProgressSample): void;
  /** Stops drawing (e.g. while a prompt is on screen); the next update draws again. */
  pause(): void;
  stop(): void;
}

/** Bars are drawn only for a person watching: stdout and stderr both terminals. */
export const interactiveOutput = (): boolean => Boolean(process.stdout.isTTY && process.stderr.isTTY);

const NONE: ProgressView = { update() {}, pause() {}, stop() {} };

/** The line drawn: "add disk [████░░░░] 42% | 420 MiB / 1.00 GiB | 35.2 MiB/s | ETA 17s". */
export function progressLine(title: string, s: ProgressSample & { rate: number }, barText: string): string {
  const pct = s.total > 0 ? Math.min(100, Math.floor((s.done * 100) / s.total)) : 0;
  const eta = s.rate > 0 && s.total > s.done ? (s.total - s.done) / s.rate : s.total > 0 && s.done >= s.total ? 0 : undefined;
  const parts = [
    `${title} ${barText} ${String(pct).padStart(3)}%`,
    `${bytes(s.done)} / ${s.total > 0 ? bytes(s.total) : '?'}`,
    `${bytes(s.rate)}/s`,
    `ETA ${duration(eta)}`,
  ];
  if (s.note) parts.push(s.note);
  return parts.join(' | ');
}

/** A live progress bar on stderr (cli-progress), or nothing when no one is watching. */
export function progressView(title: string, enabled = interactiveOutput()): ProgressView {
  if (!enabled) return NONE;
  let last: ProgressSample & { rate: number } = { done: 0, total: 0, rate: 0 };
  const samples: { t: number; done: number }[] = [];
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      hideCursor: true,
      barsize: 24,
      fps: 5,
      format: (options, params) => progressLine(title, last, cliProgress.Format.BarFormat(params.progress, options)),
    },
    cliProgress.Presets.shades_classic,
  );
  let running = false;
  const measuredRate = (done: number): number => {
    const now = Date.now();
    samples.push({ t: now, done });
    while (samples.length > 2 && now - samples[0]!.t > 5000) samples.shift();
    const first = samples[0]!;
    return now > first.t ? ((done - first.done) * 1000) / (now - first.t) : 0;
  };
  return {
    update(s) {
      last = { ...s, rate: s.rate !== undefined && s.rate > 0 ? s.rate : measuredRate(s.done) };
      const total = Math.max(1, s.total);
      if (!running) {
        bar.start(total, Math.min(s.done, total));
        running = true;
      } else {
        bar.setTotal(total);
        bar.update(Math.min(s.done, total));
      }
    },
    pause() {
      if (running) bar.stop();
      running = false;
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
