import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    // Integration tests mostly wait on the servers, which also need CPU: one worker per core,
    // at least 2, at most 4.
    maxWorkers: Math.min(4, Math.max(2, availableParallelism())),
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
