/** Three `derrick serve` replicas over one tree in a bucket (Ceph RGW), behind haproxy: see replicas-suite.ts. */
import { replicaSuite } from './replicas-suite.ts';

await replicaSuite('s3');
