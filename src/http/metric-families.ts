/**
 * Counters, gauges and histograms cheap enough for every request: a series is a plain object found by a Map
 * look-up per label value, and an observation is an increment (a histogram's bucket found by a short
 * scan). prom-client's own metrics hash their labels object at each call, which measured here as a sizeable share
 * of a manifest GET. Each family is registered in a prom-client Registry as a metric whose `get()` gives
 * prom-client's JSON shape, so the Registry writes the text format and AggregatorRegistry.aggregate sums a
 * cluster's families as it sums its own.
 */
import type * as Prom from 'prom-client';

interface Series {
  labels: Record<string, string>;
  value: number;
  /** Histograms: observations per bucket (not cumulative; the last is +Inf), and their sum. */
  counts?: Float64Array;
  sum?: number;
}

interface Value {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

export class Family {
  /** Every series, in the order first seen. */
  private readonly series: Series[] = [];
  /** The series by their first, second and third label values ('' for labels the family does not have). */
  private readonly index = new Map<string, Map<string, Map<string, Series>>>();

  constructor(
    registry: Prom.Registry,
    private readonly name: string,
    private readonly help: string,
    private readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly labelNames: readonly string[],
    private readonly buckets: readonly number[] = [],
  ) {
    if (labelNames.length > 3) throw new Error(`metric ${name}: at most 3 labels`);
    registry.registerMetric({
      name,
      help,
      get: () => Promise.resolve(this.get()),
      reset: () => {
        this.series.length = 0;
        this.index.clear();
      },
    } as unknown as Prom.Metric);
  }

  /**
   * The series of these label values (in labelNames' order, at most three: derrick's families have no more), made
   * on first use. Fixed parameters rather than an array, and one Map per label rather than a key joined from them
   * (a new string to hash at every call): this runs several times per request.
   */
  private at(a: string, b: string, c: string): Series {
    let byB = this.index.get(a);
    if (byB === undefined) this.index.set(a, (byB = new Map<string, Map<string, Series>>()));
    let byC = byB.get(b);
    if (byC === undefined) byB.set(b, (byC = new Map<string, Series>()));
    let series = byC.get(c);
    if (series === undefined) {
      const values = [a, b, c];
      const labels: Record<string, string> = {};
      this.labelNames.forEach((label, i) => (labels[label] = values[i] ?? ''));
      series = { labels, value: 0 };
      if (this.type === 'histogram') {
        series.counts = new Float64Array(this.buckets.length + 1);
        series.sum = 0;
      }
      byC.set(c, series);
      this.series.push(series);
    }
    return series;
  }

  /** Counter and gauge: adds `by` (may be negative for a gauge). */
  add(by: number, a = '', b = '', c = ''): void {
    this.at(a, b, c).value += by;
  }

  /** Histogram: one observation. */
  observe(observed: number, a = '', b = '', c = ''): void {
    const series = this.at(a, b, c);
    const { buckets } = this;
    let i = 0;
    while (i < buckets.length && observed > (buckets[i] ?? Infinity)) i++;
    if (series.counts) series.counts[i] = (series.counts[i] ?? 0) + 1;
    series.sum = (series.sum ?? 0) + observed;
    series.value++;
  }

  /** prom-client's MetricObjectWithValues. */
  private get(): { name: string; help: string; type: string; aggregator: 'sum'; values: Value[] } {
    const values: Value[] = [];
    for (const series of this.series) {
      if (this.type !== 'histogram' || !series.counts) {
        values.push({ labels: series.labels, value: series.value });
        continue;
      }
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += series.counts[i] ?? 0;
        values.push({
          labels: { ...series.labels, le: this.buckets[i] ?? '+Inf' },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: series.labels, value: series.sum ?? 0, metricName: `${this.name}_sum` });
      values.push({ labels: series.labels, value: series.value, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values };
  }
}
