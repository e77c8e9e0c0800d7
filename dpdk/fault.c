/*
 * The lossy link (see fault.h): a min-heap of frames by delivery time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "gn_error.h"

struct held {
	uint64_t due, order; /* order breaks ties: first offered first */
	uint8_t *frame;
	size_t len;
};

struct gn_fault {
	struct gn_fault_opts o;
	uint64_t rng, order;
	struct held *heap;
	size_t n, cap;
	struct gn_fault_stats st;
};

void gn_fault_opts_init(struct gn_fault_opts *o, size_t opts_size)
{
	struct gn_fault_opts d = {.opts_size = sizeof(d), .seed = 1};

	if (o == NULL)
		return;
	memset(o, 0, opts_size);
	memcpy(o, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
	o->opts_size = opts_size;
}

int gn_fault_opts_parse(const char *spec, struct gn_fault_opts *o,
			uint64_t *after)
{
	char buf[256], *save = NULL;

	gn_fault_opts_init(o, sizeof(*o));
	if (strlen(spec) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *kv = strtok_r(buf, ",", &save); kv != NULL;
	     kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *end;
		double v;

		if (eq == NULL)
			goto bad;
		*eq = '\0';
		v = strtod(eq + 1, &end);
		if (end == eq + 1 || *end != '\0' || v < 0)
			goto bad;
		if (strcmp(kv, "drop") == 0)
			o->drop = v;
		else if (strcmp(kv, "dup") == 0)
			o->dup = v;
		else if (strcmp(kv, "reorder") == 0)
			o->reorder = v;
		else if (strcmp(kv, "delay_us") == 0)
			o->delay_ns = (uint64_t)(v * 1000);
		else if (strcmp(kv, "burst_ms") == 0)
			o->burst_len_ns = (uint64_t)(v * 1e6);
		else if (strcmp(kv, "every_ms") == 0)
			o->burst_every_ns = (uint64_t)(v * 1e6);
		else if (strcmp(kv, "seed") == 0)
			o->seed = (uint64_t)v;
		else if (strcmp(kv, "after") == 0) {
			if (after != NULL)
				*after = (uint64_t)v;
		} else
			goto bad;
	}
	return 0;
bad:
	return gn_error_set(-EINVAL,
			    "fault: '%s': expected KEY=NUMBER pairs with keys "
			    "drop, dup, reorder, delay_us, burst_ms, every_ms, "
			    "seed, after",
			    spec);
}

static uint64_t rnd(struct gn_fault *f)
{
	/* splitmix64: any seed, 0 included, gives a good stream. */
	uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unit(struct gn_fault *f)
{
	return (double)(rnd(f) >> 11) / 9007199254740992.0;
}

struct gn_fault *gn_fault_create(const struct gn_fault_opts *o)
{
	struct gn_fault_opts c;
	struct gn_fault *f;

	gn_fault_opts_init(&c, sizeof(c));
	if (o != NULL)
		memcpy(&c, o,
		       o->opts_size < sizeof(c) ? o->opts_size : sizeof(c));
	if (!(c.drop >= 0 && c.drop <= 1) || !(c.dup >= 0 && c.dup <= 1) ||
	    !(c.reorder >= 0 && c.reorder <= 1) ||
	    (c.burst_len_ns > 0 && c.burst_every_ns <= c.burst_len_ns)) {
		gn_error_set(-EINVAL,
			     "fault: probabilities must be in 0..1 and a "
			     "burst shorter than its period");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		gn_error_set(-ENOMEM, "fault: out of memory");
		return NULL;
	}
	f->o = c;
	f->rng = c.seed;
	return f;
}

void gn_fault_destroy(struct gn_fault **fp)
{
	struct gn_fault *f = fp ? *fp : NULL;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->heap[i].frame);
	free(f->heap);
	free(f);
	*fp = NULL;
}

static int before(const struct held *a, const struct held *b)
{
	return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static int push(struct gn_fault *f, const void *frame, size_t len, uint64_t due)
{
	struct held h = {.due = due, .order = f->order++, .len = len};
	size_t i;

	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 256;
		struct held *p = realloc(f->heap, cap * sizeof(*p));

		if (p == NULL)
			return gn_error_set(-ENOMEM, "fault: out of memory");
		f->heap = p;
		f->cap = cap;
	}
	h.frame = malloc(len ? len : 1);
	if (h.frame == NULL)
		return gn_error_set(-ENOMEM, "fault: out of memory");
	memcpy(h.frame, frame, len);
	for (i = f->n++; i > 0 && before(&h, &f->heap[(i - 1) / 2]);
	     i = (i - 1) / 2)
		f->heap[i] = f->heap[(i - 1) / 2];
	f->heap[i] = h;
	return 0;
}

static struct held pop(struct gn_fault *f)
{
	struct held top = f->heap[0], last = f->heap[--f->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= f->n)
			break;
		if (c + 1 < f->n && before(&f->heap[c + 1], &f->heap[c]))
			c++;
		if (!before(&f->heap[c], &last))
			break;
		f->heap[i] = f->heap[c];
		i = c;
	}
	if (f->n > 0)
		f->heap[i] = last;
	return top;
}

int gn_fault_offer(struct gn_fault *f, const void *frame, size_t len,
		   uint64_t now)
{
	const struct gn_fault_opts *o = &f->o;
	uint64_t due = now + o->delay_ns;
	int rc;

	f->st.offered++;
	if (o->burst_len_ns && now % o->burst_every_ns < o->burst_len_ns) {
		f->st.burst_dropped++;
		return 0;
	}
	if (o->drop > 0 && unit(f) < o->drop) {
		f->st.dropped++;
		return 0;
	}
	if (o->jitter_ns)
		due += rnd(f) % (o->jitter_ns + 1);
	if (o->reorder > 0 && unit(f) < o->reorder) {
		/* Held back long enough for later frames to overtake it. */
		due += 2 * o->delay_ns + o->jitter_ns + 1000;
		f->st.reordered++;
	}
	rc = push(f, frame, len, due);
	if (rc == 0 && o->dup > 0 && unit(f) < o->dup) {
		f->st.duplicated++;
		rc = push(f, frame, len, due + 1 + rnd(f) % (o->delay_ns + 1));
	}
	return rc;
}

void gn_fault_deliver(struct gn_fault *f, uint64_t now,
		      void (*deliver)(void *ctx, const uint8_t *frame,
				      size_t len),
		      void *ctx)
{
	while (f->n > 0 && f->heap[0].due <= now) {
		struct held h = pop(f);

		f->st.delivered++;
		deliver(ctx, h.frame, h.len);
		free(h.frame);
	}
}

uint64_t gn_fault_next_due(const struct gn_fault *f)
{
	return f->n ? f->heap[0].due : UINT64_MAX;
}

void gn_fault_get_stats(const struct gn_fault *f, struct gn_fault_stats *s)
{
	*s = f->st;
}
