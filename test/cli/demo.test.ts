/** The demo (`npm start` runs `node --import tsx bin/cli.ts demo`): events show quickly, Ctrl+C exits cleanly. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { REPO } from '../support/cli.js';

test('demo: shows events, delivers new mail while running, exits 0 on SIGINT', async () => {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'bin/cli.ts'), 'demo', '--interval', '1'], {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const seen: { uid: number; at: number }[] = [];
  let wake: () => void = () => {};
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const line of stdout.split('\n').slice(seen.length, -1)) {
      const event = JSON.parse(line) as { 'detail-type': string; detail: { uid: number } };
      expect(event['detail-type']).toBe('IMAP Message Received');
      seen.push({ uid: event.detail.uid, at: Date.now() - started });
    }
    wake();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  try {
    // The 2 messages already in the folder, then one delivered while the demo runs.
    const deadline = Date.now() + 30_000;
    while (!seen.some((e) => e.uid === 3) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 500);
      });
    }
    expect(seen.map((e) => e.uid).slice(0, 3)).toEqual([1, 2, 3]);
    expect(seen[0]!.at).toBeLessThan(30_000);
    console.log(`demo: first event after ${seen[0]!.at} ms, the delivered one after ${seen[2]!.at} ms`);
  } finally {
    child.kill('SIGINT');
  }
  expect(await exited).toBe(0);
  expect(stderr).toContain('imap-event-source demo: everything runs on this machine');
  expect(stderr).toContain('Stop with Ctrl+C.');
  expect(stderr).toMatch(/· MAIL +new message delivered to "Firma\/Kundenbetreuung\/kunden\/a" \(UID 3, 1\/5\)/);
  expect(stderr).toMatch(/SIGINT received: stopping the demo\.\.\.\n[\s\S]*Demo stopped\.\n$/);
  expect(stderr).not.toMatch(/\n\s+at /);
});
