/* SPDX-License-Identifier: MIT */
/*
 * test-dirty.c: changed-block tracking (W1-W8, top of src/engine/dirty.c):
 * marking and its granules, names, references, extents, and the sidecar
 * through clean and unclean stops, mismatches and corruption, in a
 * temporary directory of its own per test.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dirty.h"

#define K64 (64u << 10)
#define MIB (UINT64_C(1) << 20)
#define MAXEXT 4096

struct tmp {
	char dir[64];
	char path[128]; /* the sidecar */
};

static int setup(void **st)
{
	struct tmp *t = calloc(1, sizeof *t);

	assert_non_null(t);
	strcpy(t->dir, "/tmp/loopd-test-dirty.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof t->path, "%s/export.cbt", t->dir);
	*st = t;
	return 0;
}

static int not_dots(const struct dirent *e)
{
	return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

/* The entries of dir but "." and "..", which the caller frees (scandir:
   cppcheck warns of readdir's static buffer). */
static int entries(const char *dir, struct dirent ***list)
{
	int n = scandir(dir, list, not_dots, alphasort);

	assert_true(n >= 0);
	return n;
}

static int teardown(void **st)
{
	struct tmp *t = *st;
	struct dirent **list;
	char p[400];
	int n, i;

	n = entries(t->dir, &list);
	for (i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/%s", t->dir, list[i]->d_name);
		if (unlink(p))
			assert_int_equal(rmdir(p), 0);
		free(list[i]);
	}
	free(list);
	assert_int_equal(rmdir(t->dir), 0);
	free(t);
	return 0;
}

static unsigned int files_in(const char *dir)
{
	struct dirent **list;
	int n, i;

	n = entries(dir, &list);
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return (unsigned int)n;
}

static struct dirty_set *open_ok(uint64_t size, uint32_t gran, const char *path,
				 char *note, size_t notelen)
{
	struct dirty_set *ds;
	char err[256];
	int r;

	r = dirty_set_open(size, gran, path, &ds, note, notelen, err,
			   sizeof err);
	if (r)
		fail_msg("dirty_set_open: %d %s", r, err);
	assert_string_equal(err, "");
	assert_non_null(ds);
	return ds;
}

/* The extents of name over the whole export, with no limit on runs. */
static uint32_t all_extents(struct dirty_set *ds, const char *name,
			    uint64_t size, struct dirty_extent *out,
			    uint32_t max)
{
	struct dirty_map *m = dirty_get(ds, name, strlen(name));
	uint32_t n;

	assert_non_null(m);
	n = dirty_extents(ds, m, 0, size, 0, out, max);
	dirty_put(ds, m);
	return n;
}

static void expect(struct dirty_set *ds, const char *name, uint64_t off,
		   uint64_t len, uint64_t max_run, uint32_t max,
		   const struct dirty_extent *want, uint32_t nwant)
{
	struct dirty_map *m = dirty_get(ds, name, strlen(name));
	struct dirty_extent got[64];
	uint32_t n, i;

	assert_non_null(m);
	assert_true(max <= 64);
	n = dirty_extents(ds, m, off, len, max_run, got, max);
	dirty_put(ds, m);
	for (i = 0; i < n && i < nwant; i++) {
		if (got[i].len != want[i].len || got[i].dirty != want[i].dirty)
			fail_msg("%s extent %u: got %llu %d, want %llu %d",
				 name, i, (unsigned long long)got[i].len,
				 got[i].dirty, (unsigned long long)want[i].len,
				 want[i].dirty);
	}
	assert_int_equal(n, nwant);
}

#define EXPECT(ds, name, off, len, max_run, max, ...)                          \
	do {                                                                   \
		const struct dirty_extent w_[] = {__VA_ARGS__};                \
		expect(ds, name, off, len, max_run, max, w_,                   \
		       sizeof w_ / sizeof w_[0]);                              \
	} while (0)
#define D(l)                                                                   \
	{                                                                      \
		.len = (l), .dirty = true                                      \
	}
#define C(l)                                                                   \
	{                                                                      \
		.len = (l), .dirty = false                                     \
	}

/* dirty_list into an array. */
struct listing {
	unsigned int n;
	char names[DIRTY_MAPS_MAX + 1][DIRTY_NAME_MAX + 1];
	uint64_t bytes[DIRTY_MAPS_MAX + 1];
};

static void list_one(const char *name, uint64_t bytes, void *opaque)
{
	struct listing *l = opaque;

	assert_true(l->n <= DIRTY_MAPS_MAX);
	strcpy(l->names[l->n], name);
	l->bytes[l->n++] = bytes;
}

static void list_all(struct dirty_set *ds, struct listing *l)
{
	memset(l, 0, sizeof *l);
	dirty_list(ds, list_one, l);
}

static void test_w1_marking_needs_a_map_and_splits_at_create(void **st)
{
	struct dirty_set *ds = open_ok(MIB, K64, NULL, NULL, 0);

	(void)st;
	assert_false(dirty_set_active(NULL));
	assert_false(dirty_set_active(ds));
	assert_int_equal(dirty_set_gran(ds), K64);
	dirty_mark(ds, 0, MIB); /* no map: nothing to mark, no failure */
	assert_int_equal(dirty_create(ds, "a"), 0);
	assert_true(dirty_set_active(ds));
	EXPECT(ds, "a", 0, MIB, 0, 8, C(MIB));
	dirty_mark(ds, 0, K64);
	/* W1: a map made now sees only the writes after it. */
	assert_int_equal(dirty_create(ds, "b"), 0);
	dirty_mark(ds, 2 * K64, K64);
	EXPECT(ds, "a", 0, MIB, 0, 8, D(K64), C(K64), D(K64), C(MIB - 3 * K64));
	EXPECT(ds, "b", 0, MIB, 0, 8, C(2 * K64), D(K64), C(MIB - 3 * K64));
	assert_int_equal(dirty_delete(ds, "a"), 0);
	assert_true(dirty_set_active(ds));
	assert_int_equal(dirty_delete(ds, "b"), 0);
	assert_false(dirty_set_active(ds));
	dirty_set_free(ds);
}

struct marker {
	struct dirty_set *ds;
	unsigned int id;
};

#define THREADS 4
#define ROUNDS 2000

static void *mark_main(void *arg)
{
	const struct marker *mk = arg;
	unsigned int i;

	/* Thread id marks granules id, id + THREADS, ... one byte each. */
	for (i = 0; i < ROUNDS; i++)
		dirty_mark(mk->ds,
			   (uint64_t)((i * THREADS + mk->id) % 256) * K64 +
				   i % 7,
			   1);
	return NULL;
}

/* W1: marks from several threads, while maps come and go, lose no bit. */
static void test_w1_concurrent_marks(void **st)
{
	struct dirty_set *ds = open_ok(256 * (uint64_t)K64, K64, NULL, NULL, 0);
	struct marker mk[THREADS];
	pthread_t th[THREADS];
	struct listing l;
	unsigned int i;

	(void)st;
	assert_int_equal(dirty_create(ds, "all"), 0);
	for (i = 0; i < THREADS; i++) {
		mk[i].ds = ds;
		mk[i].id = i;
		assert_int_equal(
			pthread_create(&th[i], NULL, mark_main, &mk[i]), 0);
	}
	for (i = 0; i < 200; i++) {
		struct dirty_map *m;

		assert_int_equal(dirty_create(ds, "churn"), 0);
		m = dirty_get(ds, "churn", 5);
		assert_non_null(m);
		assert_int_equal(dirty_delete(ds, "churn"), 0);
		list_all(ds, &l);
		dirty_put(ds, m);
	}
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	EXPECT(ds, "all", 0, 256 * (uint64_t)K64, 0, 8, D(256 * (uint64_t)K64));
	list_all(ds, &l);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.bytes[0], 256 * (uint64_t)K64);
	dirty_set_free(ds);
}

/* W2: any byte of a granule marks all of it. */
static void test_w2_unaligned_ranges_mark_whole_granules(void **st)
{
	struct dirty_set *ds = open_ok(MIB, K64, NULL, NULL, 0);
	struct listing l;

	(void)st;
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, 1, 1); /* granule 0 */
	dirty_mark(ds, 3 * K64 - 1, 2); /* granules 2 and 3 */
	dirty_mark(ds, 6 * K64 + 100, 2 * K64); /* 6, 7 and 8 */
	dirty_mark(ds, 12 * K64, 0); /* nothing */
	EXPECT(ds, "m", 0, MIB, 0, 16, D(K64), C(K64), D(2 * K64), C(2 * K64),
	       D(3 * K64), C(7 * K64));
	list_all(ds, &l);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.bytes[0], 6 * (uint64_t)K64);
	/* Again on marked granules: nothing changes, nothing counts twice. */
	dirty_mark(ds, 2 * K64 + 9, 2 * K64 - 9);
	dirty_mark(ds, 0, K64);
	list_all(ds, &l);
	assert_int_equal(l.bytes[0], 6 * (uint64_t)K64);
	dirty_mark(ds, 0, 4 * K64); /* one new: granule 1 */
	list_all(ds, &l);
	assert_int_equal(l.bytes[0], 7 * (uint64_t)K64);
	dirty_set_free(ds);
}

/* W2: past the end is clipped; a length that would wrap is too. */
static void test_w2_ranges_clipped_to_export(void **st)
{
	struct dirty_set *ds = open_ok(MIB, K64, NULL, NULL, 0);

	(void)st;
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, MIB, 10);
	dirty_mark(ds, UINT64_MAX, 1);
	EXPECT(ds, "m", 0, MIB, 0, 8, C(MIB));
	dirty_mark(ds, MIB - K64 - 1, UINT64_MAX);
	EXPECT(ds, "m", 0, MIB, 0, 8, C(MIB - 2 * K64), D(2 * K64));
	dirty_set_free(ds);
}

/* W2: a size that is not a multiple of the granularity. */
static void test_w2_last_partial_granule(void **st)
{
	const uint64_t size = MIB + 4096;
	struct dirty_set *ds = open_ok(size, K64, NULL, NULL, 0);
	struct dirty_extent out[8];
	struct listing l;

	(void)st;
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, size - 1, 1);
	EXPECT(ds, "m", 0, size, 0, 8, C(MIB), D(4096));
	EXPECT(ds, "m", MIB + 100, 10, 0, 8, D(10));
	list_all(ds, &l);
	assert_int_equal(l.bytes[0], 4096);
	dirty_mark(ds, 0, 1);
	list_all(ds, &l);
	assert_int_equal(l.bytes[0], K64 + 4096);
	/* A range asked past the end stops at the end. */
	assert_int_equal(all_extents(ds, "m", size + K64, out, 8), 3);
	assert_int_equal(out[2].len, 4096);
	/* An export smaller than one granule. */
	dirty_set_free(ds);
	ds = open_ok(1000, K64, NULL, NULL, 0);
	assert_int_equal(dirty_create(ds, "m"), 0);
	EXPECT(ds, "m", 0, 1000, 0, 8, C(1000));
	dirty_mark(ds, 999, 5);
	EXPECT(ds, "m", 0, 1000, 0, 8, D(1000));
	list_all(ds, &l);
	assert_int_equal(l.bytes[0], 1000);
	dirty_set_free(ds);
	/* An empty export. */
	ds = open_ok(0, K64, NULL, NULL, 0);
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, 0, 1);
	assert_int_equal(all_extents(ds, "m", 0, out, 8), 0);
	list_all(ds, &l);
	assert_int_equal(l.bytes[0], 0);
	dirty_set_free(ds);
}

/* W2: 1 GiB granules over more than one bitmap word, and 4 KiB ones. */
static void test_w2_granularities(void **st)
{
	struct dirty_set *ds =
		open_ok(UINT64_C(100) << 30, 1u << 30, NULL, NULL, 0);

	(void)st;
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, (UINT64_C(70) << 30) + 5, 1);
	EXPECT(ds, "m", 0, UINT64_C(100) << 30, 0, 8, C(UINT64_C(70) << 30),
	       D(UINT64_C(1) << 30), C(UINT64_C(29) << 30));
	dirty_set_free(ds);
	ds = open_ok(MIB, 4096, NULL, NULL, 0);
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, 4095, 2);
	EXPECT(ds, "m", 0, MIB, 0, 8, D(8192), C(MIB - 8192));
	dirty_set_free(ds);
}

static void test_w2_bad_granularity(void **st)
{
	const uint32_t bad[] = {0, 1000, 2048, 3u << 12, 1u << 31};
	struct dirty_set *ds;
	char err[256], note[64];
	unsigned int i;

	(void)st;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ds = (struct dirty_set *)1;
		assert_int_equal(dirty_set_open(MIB, bad[i], NULL, &ds, note,
						sizeof note, err, sizeof err),
				 -EINVAL);
		assert_null(ds);
		assert_non_null(strstr(err, "granularity"));
	}
}

static void test_w3_names(void **st)
{
	struct dirty_set *ds = open_ok(MIB, K64, NULL, NULL, 0);
	char name[DIRTY_NAME_MAX + 2];
	struct dirty_map *m;
	struct listing l;
	unsigned int i;

	(void)st;
	assert_int_equal(dirty_create(ds, ""), -EINVAL);
	assert_int_equal(dirty_create(ds, "a b"), -EINVAL);
	assert_int_equal(dirty_create(ds, "a/b"), -EINVAL);
	assert_int_equal(dirty_create(ds, "caf\xc3\xa9"), -EINVAL);
	memset(name, 'x', DIRTY_NAME_MAX + 1);
	name[DIRTY_NAME_MAX + 1] = '\0';
	assert_int_equal(dirty_create(ds, name), -EINVAL);
	name[DIRTY_NAME_MAX] = '\0';
	assert_int_equal(dirty_create(ds, name), 0);
	assert_int_equal(dirty_create(ds, "Az09._@:+-"), 0);
	assert_int_equal(dirty_create(ds, "Az09._@:+-"), -EEXIST);
	for (i = 2; i < DIRTY_MAPS_MAX; i++) {
		char n[16];

		snprintf(n, sizeof n, "cp%u", i);
		assert_int_equal(dirty_create(ds, n), 0);
	}
	assert_int_equal(dirty_create(ds, "one-more"), -ENOSPC);
	/* The order of the checks: EINVAL, EEXIST, then ENOSPC. */
	assert_int_equal(dirty_create(ds, "cp2"), -EEXIST);
	assert_int_equal(dirty_create(ds, "a b"), -EINVAL);
	list_all(ds, &l);
	assert_int_equal(l.n, DIRTY_MAPS_MAX);
	assert_string_equal(l.names[0], name); /* creation order */
	assert_string_equal(l.names[1], "Az09._@:+-");
	assert_string_equal(l.names[2], "cp2");
	assert_string_equal(l.names[DIRTY_MAPS_MAX - 1], "cp63");
	assert_int_equal(dirty_delete(ds, "nope"), -ENOENT);
	assert_int_equal(dirty_delete(ds, "cp2"), 0);
	assert_int_equal(dirty_delete(ds, "cp2"), -ENOENT);
	assert_int_equal(dirty_create(ds, "one-more"), 0);
	list_all(ds, &l);
	assert_string_equal(l.names[2], "cp3");
	assert_string_equal(l.names[DIRTY_MAPS_MAX - 1], "one-more");
	/* dirty_get: the name by length, not NUL-terminated. */
	assert_null(dirty_get(ds, "cp3x", 2));
	m = dirty_get(ds, "cp3x", 3);
	assert_non_null(m);
	assert_ptr_equal(dirty_get(ds, "cp3", 3), m);
	dirty_put(ds, m);
	dirty_put(ds, m);
	assert_null(dirty_get(ds, "cp", 0));
	assert_null(dirty_get(ds, "cp2", 3));
	dirty_put(ds, NULL);
	dirty_set_free(ds);
}

/* W4: a deleted map lives, and is marked, while a reference is held. */
static void test_w4_deleted_map_lives_while_held(void **st)
{
	struct dirty_set *ds = open_ok(MIB, K64, NULL, NULL, 0);
	struct dirty_extent out[8];
	struct dirty_map *old, *old2;
	struct listing l;

	(void)st;
	assert_int_equal(dirty_create(ds, "cp"), 0);
	old = dirty_get(ds, "cp", 2);
	old2 = dirty_get(ds, "cp", 2);
	assert_non_null(old);
	assert_ptr_equal(old, old2);
	dirty_mark(ds, 0, 1);
	assert_int_equal(dirty_delete(ds, "cp"), 0);
	assert_null(dirty_get(ds, "cp", 2));
	list_all(ds, &l);
	assert_int_equal(l.n, 0);
	assert_true(dirty_set_active(ds)); /* W1 counts it */
	/* Still marked (W4's choice). */
	dirty_mark(ds, 5 * K64, 1);
	assert_int_equal(dirty_extents(ds, old, 0, MIB, 0, out, 8), 4);
	assert_true(out[0].dirty && out[0].len == K64);
	assert_true(!out[1].dirty && out[1].len == 4 * K64);
	assert_true(out[2].dirty && out[2].len == K64);
	/* The name is free again, for a new, empty map. */
	assert_int_equal(dirty_create(ds, "cp"), 0);
	EXPECT(ds, "cp", 0, MIB, 0, 8, C(MIB));
	dirty_put(ds, old2);
	assert_true(dirty_set_active(ds));
	assert_int_equal(dirty_delete(ds, "cp"), 0);
	assert_true(dirty_set_active(ds)); /* old is still held */
	dirty_put(ds, old); /* the last reference frees it (ASan, valgrind) */
	assert_false(dirty_set_active(ds));
	dirty_set_free(ds);
}

/* W5: runs, max_run and max. */
static void test_w5_extents(void **st)
{
	const uint64_t size = 16 * (uint64_t)K64 + 512;
	struct dirty_set *ds = open_ok(size, K64, NULL, NULL, 0);

	(void)st;
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, 2 * K64, 5 * K64); /* granules 2-6 */
	dirty_mark(ds, 9 * K64, 1); /* granule 9 */
	dirty_mark(ds, 16 * K64, 1); /* the partial one */
	EXPECT(ds, "m", 0, size, 0, 16, C(2 * K64), D(5 * K64), C(2 * K64),
	       D(K64), C(6 * K64), D(512));
	/* The first starts at off, the last ends at off + len. */
	EXPECT(ds, "m", 3 * K64 + 7, 7 * K64, 0, 16, D(4 * K64 - 7), C(2 * K64),
	       D(K64), C(7));
	EXPECT(ds, "m", 100, 50, 0, 16, C(50));
	/* max_run cuts long runs into pieces of the same state. */
	EXPECT(ds, "m", 0, size, 2 * K64, 16, C(2 * K64), D(2 * K64),
	       D(2 * K64), D(K64), C(2 * K64), D(K64), C(2 * K64), C(2 * K64),
	       C(2 * K64), D(512));
	EXPECT(ds, "m", 3 * K64 + 7, 4 * K64, 2 * K64, 16, D(2 * K64),
	       D(2 * K64 - 7), C(7));
	/* max: at most that many, covering less. */
	EXPECT(ds, "m", 0, size, 0, 3, C(2 * K64), D(5 * K64), C(2 * K64));
	EXPECT(ds, "m", 0, size, 2 * K64, 2, C(2 * K64), D(2 * K64));
	EXPECT(ds, "m", 0, size, 0, 1, C(2 * K64));
	/* Nothing for len 0, max 0, or off at the end. */
	{
		struct dirty_map *m = dirty_get(ds, "m", 1);
		struct dirty_extent out[2];

		assert_int_equal(dirty_extents(ds, m, 0, 0, 0, out, 2), 0);
		assert_int_equal(dirty_extents(ds, m, 0, size, 0, out, 0), 0);
		assert_int_equal(dirty_extents(ds, m, size, 1, 0, out, 2), 0);
		dirty_put(ds, m);
	}
	/* A run across many bitmap words. */
	dirty_set_free(ds);
	ds = open_ok(1000 * (uint64_t)K64, K64, NULL, NULL, 0);
	assert_int_equal(dirty_create(ds, "m"), 0);
	dirty_mark(ds, 63 * K64, 600 * (uint64_t)K64);
	EXPECT(ds, "m", 0, 1000 * (uint64_t)K64, 0, 8, C(63 * K64),
	       D(600 * (uint64_t)K64), C(337 * (uint64_t)K64));
	EXPECT(ds, "m", 0, 1000 * (uint64_t)K64, 256 * (uint64_t)K64, 8,
	       C(63 * K64), D(256 * (uint64_t)K64), D(256 * (uint64_t)K64),
	       D(88 * (uint64_t)K64), C(256 * (uint64_t)K64),
	       C(81 * (uint64_t)K64));
	dirty_set_free(ds);
}

static void *read_file(const char *path, size_t *len)
{
	struct stat sb;
	void *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	*len = (size_t)sb.st_size;
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, *len), (ssize_t)*len);
	close(fd);
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* The clean flag of the sidecar at path (byte 12, dirty.c). */
static bool sidecar_clean(const char *path)
{
	size_t len;
	unsigned char *b = read_file(path, &len);
	bool clean;

	assert_true(len >= 32);
	clean = b[12] & 1;
	free(b);
	return clean;
}

static void mark_pattern(struct dirty_set *ds)
{
	assert_int_equal(dirty_create(ds, "a"), 0);
	dirty_mark(ds, 3 * K64, 1);
	dirty_mark(ds, 40 * K64, 100 * (uint64_t)K64);
	assert_int_equal(dirty_create(ds, "b"), 0);
	dirty_mark(ds, 200 * (uint64_t)K64 - 1, 2);
}

static void expect_wholly_dirty(struct dirty_set *ds, uint64_t size,
				unsigned int n)
{
	struct listing l;
	unsigned int i;

	list_all(ds, &l);
	assert_int_equal(l.n, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(l.bytes[i], size);
		EXPECT(ds, l.names[i], 0, size, 0, 8, D(size));
	}
}

#define SIZE (300 * (uint64_t)K64 + 123)

/* W6: persist writes "in use" with the names; a crash after it (free
   without close) comes back wholly dirty (W8). */
static void test_w6_persist_writes_in_use(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	assert_int_equal(files_in(t->dir), 0); /* no map: nothing written */
	mark_pattern(ds);
	assert_int_equal(dirty_set_persist(ds), 0);
	assert_false(sidecar_clean(t->path));
	assert_int_equal(files_in(t->dir), 1); /* no .tmp left */
	dirty_set_free(ds); /* the crash */
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	expect_wholly_dirty(ds, SIZE, 2);
	dirty_set_free(ds);
}

/* W6: open marks a clean sidecar "in use" before it returns. */
static void test_w6_open_marks_sidecar_in_use(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	mark_pattern(ds);
	assert_int_equal(dirty_set_close(ds), 0);
	assert_true(sidecar_clean(t->path));
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	assert_false(sidecar_clean(t->path));
	dirty_set_free(ds); /* a crash: the clean bitmaps must not return */
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_non_null(strstr(note, "not clean"));
	expect_wholly_dirty(ds, SIZE, 2);
	dirty_set_free(ds);
}

/* W7: a clean stop gives the maps back as they were. */
static void test_w7_clean_round_trip(void **st)
{
	static struct dirty_extent before[2][MAXEXT], after[2][MAXEXT];
	const char *names[] = {"a", "b"};
	struct tmp *t = *st;
	struct listing l1, l2;
	struct dirty_set *ds;
	uint32_t n1[2], i;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	mark_pattern(ds);
	for (i = 0; i < 2; i++)
		n1[i] = all_extents(ds, names[i], SIZE, before[i], MAXEXT);
	assert_int_equal(n1[0], 7);
	assert_int_equal(n1[1], 3);
	list_all(ds, &l1);
	assert_int_equal(dirty_set_close(ds), 0);
	assert_int_equal(files_in(t->dir), 1); /* no .tmp left */
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	list_all(ds, &l2);
	assert_memory_equal(&l1, &l2, sizeof l1);
	for (i = 0; i < 2; i++) {
		assert_int_equal(
			all_extents(ds, names[i], SIZE, after[i], MAXEXT),
			n1[i]);
		assert_memory_equal(before[i], after[i],
				    n1[i] * sizeof before[i][0]);
	}
	/* Marking goes on after a restart; a second clean stop keeps it. */
	dirty_mark(ds, SIZE - 1, 1);
	assert_int_equal(dirty_delete(ds, "a"), 0);
	assert_int_equal(dirty_set_persist(ds), 0);
	assert_int_equal(dirty_set_close(ds), 0);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	list_all(ds, &l2);
	assert_int_equal(l2.n, 1);
	assert_string_equal(l2.names[0], "b");
	assert_int_equal(l2.bytes[0], 2 * (uint64_t)K64 + 123);
	/* Every map deleted: a clean stop writes an empty set. */
	assert_int_equal(dirty_delete(ds, "b"), 0);
	assert_int_equal(dirty_set_close(ds), 0);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	assert_false(dirty_set_active(ds));
	assert_true(sidecar_clean(t->path)); /* no map: left as it was */
	dirty_set_free(ds);
}

/* W7: a close that cannot write leaves "in use", freed all the same. */
static void test_w7_failed_close_leaves_in_use(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256], tmp[160];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	mark_pattern(ds);
	assert_int_equal(dirty_set_persist(ds), 0);
	snprintf(tmp, sizeof tmp, "%s.tmp", t->path);
	assert_int_equal(mkdir(tmp, 0700), 0); /* SIDECAR.tmp cannot open */
	assert_int_equal(dirty_set_close(ds), -EISDIR);
	assert_int_equal(rmdir(tmp), 0);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_non_null(strstr(note, "not clean"));
	expect_wholly_dirty(ds, SIZE, 2);
	dirty_set_free(ds);
}

/* W8: an unclean stop (free without close) gives wholly dirty maps. */
static void test_w8_unclean_stop(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_int_equal(dirty_create(ds, "a"), 0);
	assert_int_equal(dirty_set_persist(ds), 0);
	dirty_mark(ds, 0, 1);
	assert_int_equal(dirty_create(ds, "lost"), 0); /* never persisted */
	dirty_set_free(ds);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_non_null(strstr(note, "not clean"));
	assert_non_null(strstr(note, "1 checkpoint(s) wholly dirty"));
	assert_null(strchr(note, '\n'));
	expect_wholly_dirty(ds, SIZE, 1);
	/* Still "in use" after this open; a clean stop now keeps all-dirty. */
	assert_false(sidecar_clean(t->path));
	assert_int_equal(dirty_set_close(ds), 0);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	expect_wholly_dirty(ds, SIZE, 1);
	dirty_set_free(ds);
}

/* W8: another size or granularity: wholly dirty, with a note. */
static void test_w8_size_or_granularity_mismatch(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	mark_pattern(ds);
	assert_int_equal(dirty_set_close(ds), 0);
	ds = open_ok(SIZE + 1, K64, t->path, note, sizeof note);
	assert_non_null(strstr(note, "written for size"));
	assert_non_null(strstr(note, "2 checkpoint(s) wholly dirty"));
	expect_wholly_dirty(ds, SIZE + 1, 2);
	assert_int_equal(dirty_set_close(ds), 0);
	/* Now written for SIZE + 1: the same size reads clean again. */
	ds = open_ok(SIZE + 1, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	expect_wholly_dirty(ds, SIZE + 1, 2);
	assert_int_equal(dirty_delete(ds, "a"), 0);
	assert_int_equal(dirty_create(ds, "a"), 0);
	assert_int_equal(dirty_set_close(ds), 0);
	ds = open_ok(SIZE + 1, 4096, t->path, note, sizeof note);
	assert_non_null(strstr(note, "at granularity 65536, now"));
	expect_wholly_dirty(ds, SIZE + 1, 2);
	dirty_set_free(ds);
}

static void expect_open_fails(const char *path, int want)
{
	struct dirty_set *ds = (struct dirty_set *)1;
	char err[256], note[256];
	int r;

	r = dirty_set_open(SIZE, K64, path, &ds, note, sizeof note, err,
			   sizeof err);
	if (r >= 0)
		fail_msg("dirty_set_open succeeded, note \"%s\"", note);
	if (want)
		assert_int_equal(r, want);
	assert_null(ds);
	assert_non_null(strstr(err, path));
	assert_null(strchr(err, '\n'));
}

/* W8: any flipped bit, any truncation, trailing bytes: an error, never
   an empty set. */
static void test_w8_corrupt_sidecar_fails(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	unsigned char *good, *b;
	size_t len, i;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	mark_pattern(ds);
	assert_int_equal(dirty_set_close(ds), 0);
	good = read_file(t->path, &len);
	/* Header, 2 names, 2 bitmaps of 5 words, checksum. */
	assert_int_equal(len, 32 + 2 * 16 + 2 * 40 + 8);
	b = malloc(len + 1);
	assert_non_null(b);
	for (i = 0; i < len * 8; i++) {
		memcpy(b, good, len);
		b[i / 8] ^= (unsigned char)(1u << (i % 8));
		write_file(t->path, b, len);
		expect_open_fails(t->path, 0);
	}
	for (i = 0; i < len; i++) {
		write_file(t->path, good, i);
		expect_open_fails(t->path, -EBADMSG);
	}
	memcpy(b, good, len);
	b[len] = 0;
	write_file(t->path, b, len + 1);
	expect_open_fails(t->path, -EBADMSG);
	/* Another version is refused by number. */
	memcpy(b, good, len);
	b[8] = 2;
	write_file(t->path, b, len);
	expect_open_fails(t->path, -EPROTONOSUPPORT);
	/* Not a file. */
	assert_int_equal(unlink(t->path), 0);
	assert_int_equal(mkdir(t->path, 0700), 0);
	expect_open_fails(t->path, -EINVAL);
	assert_int_equal(rmdir(t->path), 0);
	/* The good one still reads. */
	write_file(t->path, good, len);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	dirty_set_free(ds);
	free(b);
	free(good);
}

/* W8: a sidecar that cannot be read (a file stands for its directory). */
static void test_w8_unreadable_sidecar(void **st)
{
	struct tmp *t = *st;
	char p[256];

	snprintf(p, sizeof p, "%s/export.cbt/x", t->dir);
	write_file(t->path, "x", 1); /* a file where a directory should be */
	expect_open_fails(p, -ENOTDIR);
}

/* W8: no sidecar yet: an empty set, and nothing written until needed. */
static void test_w8_no_sidecar_empty_set(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256];

	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_string_equal(note, "");
	assert_false(dirty_set_active(ds));
	assert_int_equal(files_in(t->dir), 0);
	assert_int_equal(dirty_set_close(ds), 0);
	/* W7: no checkpoint ever, no file beside the export. */
	assert_int_equal(files_in(t->dir), 0);
	ds = open_ok(SIZE, K64, t->path, note, sizeof note);
	assert_false(dirty_set_active(ds));
	dirty_set_free(ds);
}

/* sidecar NULL: memory only; nothing is ever written. */
static void test_memory_only(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	char note[256], here[4096];

	assert_non_null(getcwd(here, sizeof here));
	assert_int_equal(chdir(t->dir), 0);
	ds = open_ok(SIZE, K64, NULL, note, sizeof note);
	assert_string_equal(note, "");
	mark_pattern(ds);
	assert_int_equal(dirty_set_persist(ds), 0);
	assert_int_equal(dirty_set_close(ds), 0);
	assert_int_equal(files_in(t->dir), 0);
	dirty_set_free(NULL);
	assert_int_equal(dirty_set_close(NULL), 0);
	assert_int_equal(chdir(here), 0);
}

/* W7: a sidecar in the current directory (no slash in the path). */
static void test_w7_relative_path(void **st)
{
	struct tmp *t = *st;
	struct dirty_set *ds;
	struct dirty_extent out[8];
	char note[256], here[4096];

	assert_non_null(getcwd(here, sizeof here));
	assert_int_equal(chdir(t->dir), 0);
	ds = open_ok(SIZE, K64, "rel.cbt", note, sizeof note);
	mark_pattern(ds);
	assert_int_equal(dirty_set_close(ds), 0);
	ds = open_ok(SIZE, K64, "rel.cbt", note, sizeof note);
	assert_string_equal(note, "");
	assert_int_equal(all_extents(ds, "b", SIZE, out, 8), 3);
	dirty_set_free(ds);
	assert_int_equal(chdir(here), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_w1_marking_needs_a_map_and_splits_at_create),
		T(test_w1_concurrent_marks),
		T(test_w2_unaligned_ranges_mark_whole_granules),
		T(test_w2_ranges_clipped_to_export),
		T(test_w2_last_partial_granule),
		T(test_w2_granularities),
		T(test_w2_bad_granularity),
		T(test_w3_names),
		T(test_w4_deleted_map_lives_while_held),
		T(test_w5_extents),
		T(test_w6_persist_writes_in_use),
		T(test_w6_open_marks_sidecar_in_use),
		T(test_w7_clean_round_trip),
		T(test_w7_relative_path),
		T(test_w7_failed_close_leaves_in_use),
		T(test_w8_unclean_stop),
		T(test_w8_size_or_granularity_mismatch),
		T(test_w8_corrupt_sidecar_fails),
		T(test_w8_unreadable_sidecar),
		T(test_w8_no_sidecar_empty_set),
		T(test_memory_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
