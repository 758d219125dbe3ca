import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds the slowest files take in a whole run on 2 cores (CI, 2026-12-01). A fresh clone has no
 * durations cached, and vitest would then start files by size (and all integration files before all unit
 * files): the fleet scale test (then 3.5 minutes) started a third into the run and ended it alone. Only the order
 * uses these figures; a stale one costs some wall time, never a test.
 */
const SLOWEST_SECONDS: Record<string, number> = {
  'test/integration/fleet-scale.test.ts': 117,
  'test/integration/faults.test.ts': 107,
  'test/integration/chaos.test.ts': 85,
  'test/package/pack.test.ts': 82,
  'test/integration/hostile-server.test.ts': 38,
  'test/integration/content.test.ts': 35,
  'test/integration/poller.test.ts': 30,
  'test/e2e/fleet-deploy.test.ts': 23,
};

/**
 * Longest first across both projects, so that no long file starts late: the durations vitest cached from
 * the last run where it has them (a developer's machine), else SLOWEST_SECONDS, else by size like vitest.
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const { cache, config } = this.ctx;
    const key = (spec: TestSpecification) => `${spec.project.name}:${relative(config.root, spec.moduleId)}`;
    const expectedMs = (spec: TestSpecification) =>
      cache.getFileTestResults(key(spec))?.duration ??
      (SLOWEST_SECONDS[relative(config.root, spec.moduleId)] ?? -1) * 1_000;
    const size = (spec: TestSpecification) => cache.getFileStats(key(spec))?.size ?? 0;
    return [...files].sort((a, b) => expectedMs(b) - expectedMs(a) || size(b) - size(a));
  }
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    // Integration tests mostly wait on the servers, which also need CPU: one worker per core,
    // at least 2, at most 4.
    maxWorkers: Math.min(4, Math.max(2, availableParallelism())),
    sequence: { sequencer: LongestFirst },
    env: {
      // The AWS SDK warns once per process that it will need Node 22; noise in test output.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // The handler's CloudWatch metrics (EMF lines on stdout) are noise in test output.
      POWERTOOLS_METRICS_DISABLED: 'true',
    },
    projects: [
      // Pure core, adapters with mocks, synthesized templates: no servers.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/infra/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: [
            'test/integration/**/*.test.ts',
            'test/cli/**/*.test.ts',
            'test/e2e/**/*.test.ts',
            'test/package/**/*.test.ts',
          ],
          // Starts one Dovecot with TLS, one without, and one moto_server for the whole run.
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});
