import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // GPU suites share one Dawn device per worker; two workers match the 2-core CI machine.
    pool: 'forks',
    maxWorkers: 2,
    // Properties are bounded by a number of runs, never by time; this is only a hang guard, set far
    // above what a loaded 2-core machine with a cold Mesa shader cache needs, so speed never decides a verdict.
    testTimeout: 900_000,
    hookTimeout: 900_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
