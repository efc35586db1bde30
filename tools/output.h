/* SPDX-License-Identifier: MIT */
/*
 * output.h - everything gmemctl prints: narrative lines for people, the
 * progress bar, aligned tables, JSON, errors and usage.  The one module
 * that writes to stdout or stderr; libgmem itself never prints.
 *
 * Modes, set once by out_init():
 *   text   lines and tables on stdout; a progress bar while stdout is a
 *          terminal (nothing in its place otherwise)
 *   json   stdout carries one JSON document, built with the out_obj_*,
 *          out_arr_* and out_field_* calls; narrative calls print nothing
 *   quiet  nothing on stdout at all (gmemctl info running the demo)
 * Errors and usage mistakes always go to stderr.
 */
#ifndef GMEMCTL_OUTPUT_H
#define GMEMCTL_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PRINTF(a, b)	__attribute__((format(printf, a, b)))

enum out_mode {
	OUT_TEXT,
	OUT_JSON,
	OUT_QUIET,
};

void out_init(enum out_mode mode);
enum out_mode out_mode(void);
/* Switch to quiet and back (gmemctl info runs the demo inside). */
enum out_mode out_set_mode(enum out_mode mode);

/* For people, text mode only. */
void out_line(const char *fmt, ...) PRINTF(1, 2);
/* "\nN. text": the start of a numbered step. */
void out_step(unsigned int n, const char *fmt, ...) PRINTF(2, 3);
/* "   text": a detail under a step. */
void out_detail(const char *fmt, ...) PRINTF(1, 2);

/* Errors and warnings: "gmemctl: ..." on stderr, in every mode. */
void out_error(const char *fmt, ...) PRINTF(1, 2);
void out_warn(const char *fmt, ...) PRINTF(1, 2);
/* --help: usage on stdout; returns EXIT_OK. */
int out_help(const char *usage);
/*
 * A usage mistake: the message and the synopsis (usage up to its first
 * blank line) on stderr; returns EXIT_USAGE.
 */
int out_usage_error(const char *usage, const char *fmt, ...) PRINTF(2, 3);

/*
 * Progress of a long step: a bar on a terminal in text mode, nothing
 * otherwise.  out_progress() is cheap enough to call on every item.
 */
void out_progress_begin(const char *label, uint64_t total);
void out_progress(uint64_t done);
void out_progress_end(void);

/* Tables: cells are copied; numbers (a leading digit) align right. */
struct out_table;
struct out_table *out_table_new(const char *title, unsigned int ncols, ...);
void out_table_row(struct out_table *t, ...);	/* ncols const char * */
/* Print (text mode only) and free. */
void out_table_print(struct out_table *t);

/*
 * A named result: in text mode a row (label, value, formatted note) of
 * the three-column table t; in JSON mode "key": raw in the current
 * object.
 */
void out_metric(struct out_table *t, const char *key, double raw,
		const char *label, const char *value, const char *fmt, ...)
	PRINTF(6, 7);

/* A JSON writer: pretty-printed, commas and nesting handled. */
#define JSON_MAX_DEPTH	16

struct json {
	FILE *f;
	int depth;
	bool first[JSON_MAX_DEPTH];
	bool in_array[JSON_MAX_DEPTH];
};

void json_begin(struct json *j, FILE *f);	/* opens the top object */
void json_end(struct json *j);			/* closes it, newline */
void json_obj_begin(struct json *j, const char *key);	/* key NULL in arrays */
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t val);
void json_dbl(struct json *j, const char *key, double val); /* NaN: null */
void json_bool(struct json *j, const char *key, bool val);

/* The stdout document, in JSON mode only (no-ops in the other modes). */
void out_obj_begin(const char *key);
void out_obj_end(void);
void out_arr_begin(const char *key);
void out_arr_end(void);
void out_field_str(const char *key, const char *val);
void out_field_u64(const char *key, uint64_t val);
void out_field_dbl(const char *key, double val);
void out_field_bool(const char *key, bool val);
/* Start and finish the document (json_begin/json_end on stdout). */
void out_doc_begin(void);
void out_doc_end(void);

/*
 * Formatting for people, into one of a few rotating static buffers: a
 * result stays valid for the next 15 calls, enough for one line.
 */
/* "1 GiB", "37.50 KiB", "1023.9 MiB": never rounded up (output.c) */
const char *fmt_bytes(uint64_t bytes);
const char *fmt_ns(double ns);			/* "850 ns", "1.82 us" */
const char *fmt_count(uint64_t n);		/* "100,000" */
const char *fmt_ratio(double r);		/* "3.21x" */

#endif /* GMEMCTL_OUTPUT_H */
