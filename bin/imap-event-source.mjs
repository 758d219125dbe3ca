#!/usr/bin/env node
// Launcher for the package's `bin` entry: registers tsx's ESM loader, then runs the TypeScript CLI.
import { register } from 'tsx/esm/api';

register();
await import('./cli.js');
