import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // GPU suites share one Dawn device per worker; two workers match the 2-core CI machine.
    pool: 'forks',
    maxWorkers: 2,
    // fast-check properties carry their own hang guard (interruptAfterTimeLimit 100 s) below this:
    // with a cold Mesa shader cache a first case that compiles pipelines took 30+ s on 2 cores.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
