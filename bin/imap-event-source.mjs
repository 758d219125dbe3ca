#!/usr/bin/env node
// The CLI in a clone of the repository: registers tsx's ESM loader, then runs the TypeScript sources.
// Not in the package: its `bin` is the compiled dist/bin/cli.js (`npm run build`).
import { register } from 'tsx/esm/api';

register();
await import('./cli.js');
