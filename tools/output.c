// SPDX-License-Identifier: MIT
/*
 * output.c - the only part of gmemctl that prints (see output.h): modes,
 * narrative lines, the progress bar, tables, the JSON writer, errors.
 *
 * State is one static struct: gmemctl is a single-threaded program and
 * every subcommand sets the mode once, at its start.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gmemctl.h"
#include "output.h"

#define BAR_WIDTH	30
#define WRAP		79		/* columns of narrative text */
#define FMT_BUFS	16
#define FMT_LEN		48

static struct {
	enum out_mode mode;
	bool tty;			/* stdout is a terminal */
	struct json doc;		/* stdout, in JSON mode */
	/* progress */
	const char *label;
	uint64_t total;
	uint64_t next;			/* redraw when done reaches this */
	int shown;			/* last percentage drawn, -1 = none */
} out;

void out_init(enum out_mode mode)
{
	out.mode = mode;
	out.tty = isatty(STDOUT_FILENO);
	out.label = NULL;
}

enum out_mode out_mode(void)
{
	return out.mode;
}

enum out_mode out_set_mode(enum out_mode mode)
{
	enum out_mode old = out.mode;

	out.mode = mode;
	return old;
}

/* Columns before the text of a line: "   text", "4. text". */
static size_t text_indent(const char *s)
{
	const char *p = s, *q;

	while (*p == ' ')
		p++;
	for (q = p; *q >= '0' && *q <= '9'; q++)
		;
	if (q > p && q[0] == '.' && q[1] == ' ')
		p = q + 2;
	return (size_t)(p - s);
}

/*
 * Print s and a newline, wrapped at WRAP columns on spaces; continuation
 * lines are indented like the text of the first.
 */
static void wrapped(const char *s)
{
	size_t indent, room, len, cut;
	bool first = true;

	while (*s == '\n')
		putchar(*s++);
	if (!*s)
		putchar('\n');
	indent = text_indent(s);
	if (indent > WRAP / 2)
		indent = 0;
	while (*s) {
		room = first ? WRAP : WRAP - indent;
		len = strlen(s);
		if (len > room) {
			/* Not between a number and its unit: "4 MiB". */
			for (cut = room; cut > 0 && (s[cut] != ' ' ||
			     (s[cut - 1] >= '0' && s[cut - 1] <= '9'));
			     cut--)
				;
			if (first && cut <= indent)
				cut = 0;
			if (!cut) {	/* one long word: break after it */
				const char *sp = strchr(s + (first ? indent :
							     0), ' ');

				cut = sp ? (size_t)(sp - s) : len;
			}
			len = cut;
		}
		if (!first)
			printf("%*s", (int)indent, "");
		fwrite(s, 1, len, stdout);
		putchar('\n');
		s += len;
		while (*s == ' ')
			s++;
		first = false;
	}
}

PRINTF(2, 0)
static void vline(const char *prefix, const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n;

	if (out.mode != OUT_TEXT)
		return;
	n = (size_t)snprintf(buf, sizeof(buf), "%s", prefix);
	vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	wrapped(buf);
	fflush(stdout);
}

void out_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline("", fmt, ap);
	va_end(ap);
}

void out_step(unsigned int n, const char *fmt, ...)
{
	char prefix[16];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "\n%u. ", n);
	va_start(ap, fmt);
	vline(prefix, fmt, ap);
	va_end(ap);
}

void out_detail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline("   ", fmt, ap);
	va_end(ap);
}

PRINTF(2, 0)
static void verr(const char *what, const char *fmt, va_list ap)
{
	out_progress_end();
	fflush(stdout);
	fprintf(stderr, "gmemctl: %s", what);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void out_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr("", fmt, ap);
	va_end(ap);
}

void out_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr("warning: ", fmt, ap);
	va_end(ap);
}

int out_help(const char *usage)
{
	fputs(usage, stdout);
	fflush(stdout);
	return EXIT_OK;
}

int out_usage_error(const char *usage, const char *fmt, ...)
{
	const char *end = strstr(usage, "\n\n");
	va_list ap;

	va_start(ap, fmt);
	verr("", fmt, ap);
	va_end(ap);
	/* The synopsis only: the first paragraph of the usage. */
	fprintf(stderr, "%.*s\n(--help for more)\n",
		(int)(end ? end - usage : (ptrdiff_t)strlen(usage)), usage);
	return EXIT_USAGE;
}

/* ---- progress --------------------------------------------------------- */

static bool progress_on(void)
{
	return out.mode == OUT_TEXT && out.tty;
}

static void progress_draw(uint64_t done)
{
	int pct = (int)(out.total ? done * 100 / out.total : 100);
	int fill = pct * BAR_WIDTH / 100;

	if (pct == out.shown)
		return;
	out.shown = pct;
	printf("\r   [%.*s%*s] %3d%%  %s", fill,
	       "##############################", BAR_WIDTH - fill, "", pct,
	       out.label);
	fflush(stdout);
}

void out_progress_begin(const char *label, uint64_t total)
{
	out.label = label;
	out.total = total;
	out.shown = -1;
	out.next = 0;
	if (progress_on())
		progress_draw(0);
	out.next = total / 100 ? total / 100 : 1;
}

void out_progress(uint64_t done)
{
	if (done < out.next || !out.label)
		return;
	out.next = done + (out.total / 100 ? out.total / 100 : 1);
	if (progress_on())
		progress_draw(done);
}

void out_progress_end(void)
{
	if (!out.label)
		return;
	if (progress_on())
		printf("\r\033[K");
	fflush(stdout);
	out.label = NULL;
}

/* ---- tables ----------------------------------------------------------- */

struct out_table {
	char *title;
	unsigned int ncols;
	unsigned int nrows;
	unsigned int cap;
	char **cells;			/* (nrows + 1) * ncols: row 0 = head */
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		out_error("out of memory");
		exit(EXIT_FAIL);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xrealloc(NULL, n), s, n);
}

static void add_row(struct out_table *t, va_list ap)
{
	if (t->nrows + 1 >= t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->cells = xrealloc(t->cells, sizeof(char *) * t->cap *
				    t->ncols);
	}
	for (unsigned int c = 0; c < t->ncols; c++) {
		const char *s = va_arg(ap, const char *);

		t->cells[(size_t)t->nrows * t->ncols + c] =
			xstrdup(s ? s : "");
	}
	t->nrows++;
}

struct out_table *out_table_new(const char *title, unsigned int ncols, ...)
{
	struct out_table *t = xrealloc(NULL, sizeof(*t));
	va_list ap;

	memset(t, 0, sizeof(*t));
	t->title = title ? xstrdup(title) : NULL;
	t->ncols = ncols;
	va_start(ap, ncols);
	add_row(t, ap);
	va_end(ap);
	return t;
}

void out_table_row(struct out_table *t, ...)
{
	va_list ap;

	va_start(ap, t);
	add_row(t, ap);
	va_end(ap);
}

/* A number with at most a unit ("1.82 us", "100,000"): align right. */
static bool numeric(const char *s)
{
	bool digit = (*s >= '0' && *s <= '9') ||
		     ((*s == '-' || *s == '<' || *s == '~') && s[1] >= '0' &&
		      s[1] <= '9');
	const char *space = strchr(s, ' ');

	return digit && (!space || !strchr(space + 1, ' '));
}

/* The line under the head: "  ----+------". */
static void rule(unsigned int ncols, const size_t *w)
{
	for (unsigned int c = 0; c < ncols; c++) {
		fputs(c ? "-+-" : "  ", stdout);
		for (size_t i = 0; i < w[c]; i++)
			putchar('-');
	}
	putchar('\n');
}

void out_table_print(struct out_table *t)
{
	size_t w[16] = { 0 };
	unsigned int r, c;

	if (!t)
		return;
	if (out.mode == OUT_TEXT && t->ncols <= 16) {
		for (r = 0; r < t->nrows; r++)
			for (c = 0; c < t->ncols; c++) {
				size_t n = strlen(t->cells[r * t->ncols + c]);

				if (n > w[c])
					w[c] = n;
			}
		if (t->title)
			printf("\n%s\n", t->title);
		for (r = 0; r < t->nrows; r++) {
			for (c = 0; c < t->ncols; c++) {
				const char *s = t->cells[r * t->ncols + c];
				bool right = r && numeric(s);
				bool last = c + 1 == t->ncols;

				printf(c ? " | " : "  ");
				if (right || !last)
					printf(right ? "%*s" : "%-*s",
					       (int)w[c], s);
				else
					fputs(s, stdout);
			}
			putchar('\n');
			if (!r)
				rule(t->ncols, w);
		}
		fflush(stdout);
	}
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++)
			free(t->cells[r * t->ncols + c]);
	free(t->cells);
	free(t->title);
	free(t);
}

void out_metric(struct out_table *t, const char *key, double raw,
		const char *label, const char *value, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (out.mode == OUT_JSON) {
		json_dbl(&out.doc, key, raw);
		return;
	}
	if (out.mode != OUT_TEXT || !t)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out_table_row(t, label, value, buf);
}

/* ---- JSON ------------------------------------------------------------- */

static void json_indent(struct json *j)
{
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Comma, newline and indent before a value; its key, in objects. */
static void json_key(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	json_indent(j);
	if (key && !j->in_array[j->depth]) {
		json_string(j->f, key);
		fputs(": ", j->f);
	}
}

static void json_open(struct json *j, const char *key, char ch, bool array)
{
	json_key(j, key);
	fputc(ch, j->f);
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
	j->in_array[j->depth] = array;
}

static void json_close(struct json *j, char ch)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		json_indent(j);
	fputc(ch, j->f);
}

void json_begin(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	fputc('{', f);
	j->depth = 1;
	j->first[1] = true;
}

void json_end(struct json *j)
{
	while (j->depth > 0)
		json_close(j, j->in_array[j->depth] ? ']' : '}');
	fputc('\n', j->f);
	fflush(j->f);
}

void json_obj_begin(struct json *j, const char *key)
{
	json_open(j, key, '{', false);
}

void json_obj_end(struct json *j)
{
	json_close(j, '}');
}

void json_arr_begin(struct json *j, const char *key)
{
	json_open(j, key, '[', true);
}

void json_arr_end(struct json *j)
{
	json_close(j, ']');
}

void json_str(struct json *j, const char *key, const char *val)
{
	json_key(j, key);
	json_string(j->f, val);
}

void json_u64(struct json *j, const char *key, uint64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%llu", (unsigned long long)val);
}

void json_dbl(struct json *j, const char *key, double val)
{
	json_key(j, key);
	if (!isfinite(val))
		fputs("null", j->f);
	else if (val == floor(val) && fabs(val) < 1e15)
		fprintf(j->f, "%.0f", val);
	else
		fprintf(j->f, "%.6g", val);
}

void json_bool(struct json *j, const char *key, bool val)
{
	json_key(j, key);
	fputs(val ? "true" : "false", j->f);
}

#define IF_JSON(call)				\
	do {					\
		if (out.mode == OUT_JSON)	\
			call;			\
	} while (0)

void out_doc_begin(void)
{
	IF_JSON(json_begin(&out.doc, stdout));
}

void out_doc_end(void)
{
	IF_JSON(json_end(&out.doc));
}

void out_obj_begin(const char *key)
{
	IF_JSON(json_obj_begin(&out.doc, key));
}

void out_obj_end(void)
{
	IF_JSON(json_obj_end(&out.doc));
}

void out_arr_begin(const char *key)
{
	IF_JSON(json_arr_begin(&out.doc, key));
}

void out_arr_end(void)
{
	IF_JSON(json_arr_end(&out.doc));
}

void out_field_str(const char *key, const char *val)
{
	IF_JSON(json_str(&out.doc, key, val));
}

void out_field_u64(const char *key, uint64_t val)
{
	IF_JSON(json_u64(&out.doc, key, val));
}

void out_field_dbl(const char *key, double val)
{
	IF_JSON(json_dbl(&out.doc, key, val));
}

void out_field_bool(const char *key, bool val)
{
	IF_JSON(json_bool(&out.doc, key, val));
}

/* ---- formatting ------------------------------------------------------- */

static char *fmt_buf(void)
{
	static char bufs[FMT_BUFS][FMT_LEN];
	static unsigned int next;

	return bufs[next++ % FMT_BUFS];
}

/*
 * bytes in the largest binary unit it reaches, from integers (a double
 * cannot hold every 64-bit size).  An exact value prints as is ("1 GiB",
 * "37.5 KiB" is "37.50 KiB"); any other is cut, never rounded, to two
 * digits under 10 and one above, so that 1 GiB - 4 KiB reads 1023.9 MiB
 * and not 1024.0 MiB.  Where the cut digits would all be zero (a value
 * just above a round one would read as that round one) more digits are
 * shown, up to six, then the exact count of bytes.
 */
const char *fmt_bytes(uint64_t bytes)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB",
					    "PiB", "EiB" };
	unsigned int u = 0, digits, shift;
	uint64_t whole, frac, shown = 0, scale = 1;
	char *b = fmt_buf();

	while (u + 1 < sizeof(unit) / sizeof(unit[0]) &&
	       bytes >> (10 * (u + 1)))
		u++;
	shift = 10 * u;
	whole = bytes >> shift;
	frac = bytes - (whole << shift);
	if (!frac) {
		snprintf(b, FMT_LEN, "%llu %s", (unsigned long long)whole,
			 unit[u]);
		return b;
	}
	for (digits = 1; digits <= 6; digits++) {
		scale *= 10;
		shown = (uint64_t)(((unsigned __int128)frac * scale) >> shift);
		if (digits >= (whole < 10 ? 2u : 1u) && shown)
			break;
	}
	if (!shown) {
		snprintf(b, FMT_LEN, "%s B", fmt_count(bytes));
		return b;
	}
	snprintf(b, FMT_LEN, "%llu.%0*llu %s", (unsigned long long)whole,
		 (int)digits, (unsigned long long)shown, unit[u]);
	return b;
}

const char *fmt_ns(double ns)
{
	char *b = fmt_buf();

	if (!isfinite(ns))
		snprintf(b, FMT_LEN, "-");
	else if (ns < 1e3)
		snprintf(b, FMT_LEN, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(b, FMT_LEN, ns < 1e4 ? "%.2f us" : "%.1f us",
			 ns / 1e3);
	else if (ns < 1e9)
		snprintf(b, FMT_LEN, ns < 1e7 ? "%.2f ms" : "%.1f ms",
			 ns / 1e6);
	else
		snprintf(b, FMT_LEN, "%.2f s", ns / 1e9);
	return b;
}

const char *fmt_count(uint64_t n)
{
	char tmp[32], *b = fmt_buf();
	int len = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)n);
	int o = 0;

	for (int i = 0; i < len; i++) {
		if (i && (len - i) % 3 == 0)
			b[o++] = ',';
		b[o++] = tmp[i];
	}
	b[o] = '\0';
	return b;
}

const char *fmt_ratio(double r)
{
	char *b = fmt_buf();

	if (!isfinite(r))
		snprintf(b, FMT_LEN, "-");
	else
		snprintf(b, FMT_LEN, r < 10 ? "%.2fx" : "%.1fx", r);
	return b;
}
