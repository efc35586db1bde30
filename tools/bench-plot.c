// SPDX-License-Identifier: MIT
/*
 * bench-plot.c - the PNGs of "gmemctl bench --plots DIR": gnuplot
 * scripts generated with their data inline (datablocks) and piped to
 * gnuplot, whose messages go to a log shown only if it fails.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "gmemctl.h"
#include "output.h"

static const char plot_head[] =
"set terminal pngcairo size 960,540 font 'sans,10'\n"
"set grid\n"
"set key top left\n"
"set style line 1 lw 2 lc rgb '#1b9e77'\n"
"set style line 2 lw 2 lc rgb '#d95f02'\n"
"set style line 3 lw 2 lc rgb '#7570b3'\n"
"set style line 4 lw 2 lc rgb '#666666' dt 2\n"
"set style line 5 lw 2 lc rgb '#1b9e77' dt 3\n";

/* One datablock of latency curves: quantile, then a column per variant. */
static void plot_curves(FILE *p, const char *name,
			const struct curve *c)
{
	fprintf(p, "$%s << EOD\n", name);
	for (unsigned int i = 0; i < QUANTILES; i++) {
		fprintf(p, "%.4f", 100.0 * (i + 0.5) / QUANTILES);
		for (int v = 0; v < NR_V; v++)
			fprintf(p, " %.1f", c[v].set ? c[v].q[i] : NAN);
		fputc('\n', p);
	}
	fputs("EOD\n", p);
}

/*
 * One line per variant from datablock data: column v + 2 against column
 * 1, or (x_is_variant, for distributions) column 1 against it.
 */
static void plot_lines(FILE *p, const char *data, bool x_is_variant,
		       const bool *have)
{
	bool first = true;

	fputs("plot ", p);
	for (int v = 0; v < NR_V; v++) {
		if (!have[v])
			continue;
		fprintf(p, "%s$%s using ", first ? "" : ", ", data);
		if (x_is_variant)
			fprintf(p, "%d:1", v + 2);
		else
			fprintf(p, "1:%d", v + 2);
		fprintf(p, " with %s ls %d title '%s'",
			x_is_variant ? "lines" : "linespoints", v + 1,
			vname[v]);
		first = false;
	}
	fputc('\n', p);
}

/* Run one gnuplot script through a pipe; its errors go to a log. */
static int gnuplot(const char *dir, const char *png,
		   void (*data)(FILE *p, const struct results *r),
		   const struct results *r)
{
	char cmd[4200], log[4096 + 32];
	FILE *p;
	int st;

	snprintf(log, sizeof(log), "%s/.gnuplot.log", dir);
	snprintf(cmd, sizeof(cmd), "gnuplot 2>'%s'", log);
	p = popen(cmd, "w");
	if (!p) {
		out_error("bench: cannot run gnuplot: %s", strerror(errno));
		return EXIT_FAIL;
	}
	fputs(plot_head, p);
	fprintf(p, "set output '%s/%s'\n", dir, png);
	data(p, r);
	st = pclose(p);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		FILE *l = fopen(log, "r");
		char line[256];

		out_error("bench: gnuplot failed on %s:", png);
		while (l && fgets(line, sizeof(line), l)) {
			line[strcspn(line, "\n")] = '\0';
			out_error("  %s", line);
		}
		if (l)
			fclose(l);
		return EXIT_FAIL;
	}
	unlink(log);
	return 0;
}

static bool any(const bool *have)
{
	for (int v = 0; v < NR_V; v++)
		if (have[v])
			return true;
	return false;
}

static void data_latency(FILE *p, const struct results *r)
{
	bool fl[NR_V], rnd[NR_V];

	plot_curves(p, "flip", r->flip);
	plot_curves(p, "random", r->random);
	for (int v = 0; v < NR_V; v++) {
		fl[v] = r->flip[v].set;
		rnd[v] = r->random[v].set;
	}
	fprintf(p, "set multiplot layout 1,%d title 'Conversion latency "
		"distribution (gmemctl bench)'\n"
		"set logscale x\n"
		"set xlabel 'latency of one conversion (ns)'\n"
		"set ylabel 'percentile'\n"
		"set yrange [0:100]\n", any(fl) + any(rnd));
	if (any(fl)) {
		fputs("set key top left\n"
		      "set title 'OVMF DMA flips, 1-2 pages, 1 GiB guest'\n",
		      p);
		plot_lines(p, "flip", true, fl);
	}
	if (any(rnd)) {
		fputs("set key bottom right\n"
		      "set title 'random 4 KiB conversions, 1 TiB guest'\n",
		      p);
		plot_lines(p, "random", true, rnd);
	}
	fputs("unset multiplot\n", p);
}

static void boot_block(FILE *p, const char *name, const struct results *r,
		       int what)
{
	fprintf(p, "$%s << EOD\n", name);
	for (unsigned int i = 0; i < r->nboot; i++) {
		const struct boot_point *b = &r->boot[i];

		fprintf(p, "%.0f", (double)b->size / GiB);
		for (int v = 0; v < NR_V; v++) {
			double x = what == 0 ? b->total[v] / 1e6 :
				   what == 1 ? (double)b->mem[v] / MiB :
				   (double)b->tracking[v] / KiB;

			if (isnan(b->total[v]) || (what == 2 && x <= 0))
				x = NAN;
			fprintf(p, " %.3f", x);
		}
		fputc('\n', p);
	}
	fputs("EOD\n", p);
}

static void have_boot(const struct results *r, bool *have, bool tracking)
{
	for (int v = 0; v < NR_V; v++)
		have[v] = r->nboot && !isnan(r->boot[0].total[v]) &&
			  (!tracking || r->boot[0].tracking[v]);
}

static void data_boot_time(FILE *p, const struct results *r)
{
	bool have[NR_V];

	boot_block(p, "t", r, 0);
	have_boot(r, have, false);
	fputs("set key bottom right\n"
	      "set title 'Boot-like workload against guest size (gmemctl "
	      "bench)'\n"
	      "set logscale x 2\n"
	      "set xlabel 'guest size (GiB, sparse beyond what is touched)'\n"
	      "set ylabel 'time (ms)'\n"
	      "set yrange [0:*]\n", p);
	plot_lines(p, "t", false, have);
}

static void data_boot_mem(FILE *p, const struct results *r)
{
	bool have[NR_V];

	boot_block(p, "m", r, 1);
	boot_block(p, "k", r, 2);
	have_boot(r, have, false);
	fputs("set key bottom right\n"
	      "set multiplot layout 1,2 title 'Memory against guest size, "
	      "boot-like workload (gmemctl bench)'\n"
	      "set logscale x 2\n"
	      "set xlabel 'guest size (GiB)'\n"
	      "set title 'allocated backing + state tracking'\n"
	      "set ylabel 'MiB'\n"
	      "set yrange [0:*]\n", p);
	plot_lines(p, "m", false, have);
	have_boot(r, have, true);
	fputs("set key top left\n"
	      "set title 'state tracking only'\n"
	      "set logscale y\n"
	      "set ylabel 'KiB'\n"
	      "set yrange [*:*]\n", p);
	plot_lines(p, "k", false, have);
	fputs("unset multiplot\n", p);
}

int bench_plots_check(const char *dir)
{
	struct stat st;

	if (system("command -v gnuplot >/dev/null 2>&1")) {
		out_error("bench: skipped: --plots needs gnuplot, which is not "
			  "installed (apt-get install gnuplot-nox)");
		return EXIT_SKIP;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		out_error("bench: --plots %s: cannot make the directory: %s",
			  dir, strerror(errno));
		return EXIT_USAGE;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		out_error("bench: --plots %s: not a directory", dir);
		return EXIT_USAGE;
	}
	if (access(dir, W_OK | X_OK)) {
		out_error("bench: --plots %s: not writable: %s", dir,
			  strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

int bench_plots(const char *dir, bool latency, bool boot,
		const struct results *r)
{
	char made[256] = "";
	int ret = 0;

	if (mkdir(dir, 0755) && errno != EEXIST) {
		out_error("bench: mkdir %s: %s", dir, strerror(errno));
		return EXIT_FAIL;
	}
	if (latency) {
		ret |= gnuplot(dir, "bench-latency.png", data_latency, r);
		strcat(made, " bench-latency.png");
	}
	if (boot) {
		ret |= gnuplot(dir, "bench-boot-time.png", data_boot_time, r);
		ret |= gnuplot(dir, "bench-boot-memory.png", data_boot_mem,
			       r);
		strcat(made, " bench-boot-time.png bench-boot-memory.png");
	}
	if (!ret && made[0])
		out_line("\nplots in %s:%s", dir, made);
	return ret ? EXIT_FAIL : 0;
}

