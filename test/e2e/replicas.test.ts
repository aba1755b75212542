/** Three `derrick serve` replicas over one tree in a directory, behind haproxy: see replicas-suite.ts. */
import { replicaSuite } from './replicas-suite.ts';

await replicaSuite('fs');
