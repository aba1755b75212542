#!/usr/bin/env node
// The installed entry point: runs the compiled CLI (npm ci / npm install build it through `prepare`).
import '../dist/cli/main.js';
