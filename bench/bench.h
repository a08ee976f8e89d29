/*
 * bench.h - what every benchmark needs: a monotonic clock and
 * percentiles of a sample of timings.
 */
#ifndef PWB_BENCH_H
#define PWB_BENCH_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline double bench_now_s(void)
{
	return bench_now_ns() * 1e-9;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile (0 to 1) of v[0..n); sorts v. */
static inline double bench_pct(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return v[(size_t)(q * (double)(n - 1))];
}

typedef struct bench_p50_p99 {
	double p50, p99;
} bench_p50_p99;

static inline bench_p50_p99 bench_percentiles(double *v, size_t n)
{
	double p50 = bench_pct(v, n, 0.5);
	return (bench_p50_p99){p50, v[(size_t)(0.99 * (double)(n - 1))]};
}

#endif
