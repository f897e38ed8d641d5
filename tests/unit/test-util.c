/* SPDX-License-Identifier: MIT */
/*
 * test-util.c: the small helpers of src/util/: the list, rounding, the
 * whole-buffer loops and the extent walk (on a real temporary file).
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/io.h"
#include "util/list.h"
#include "util/rounding.h"

struct item {
	int v;
	struct list_node node;
};

static void test_list_fifo_and_removal(void **st)
{
	struct item it[4];
	struct list_node head, *pos, *tmp;
	int i, sum = 0;

	(void)st;
	list_init(&head);
	assert_true(list_empty(&head));
	assert_null(list_first(&head));
	for (i = 0; i < 4; i++) {
		it[i].v = i;
		it[i].node.next = NULL;
		assert_false(list_linked(&it[i].node));
		list_add_tail(&head, &it[i].node);
		assert_true(list_linked(&it[i].node));
	}
	list_del(&it[1].node);
	assert_false(list_linked(&it[1].node));
	list_for_each_safe(pos, tmp, &head)
	{
		struct item *x = list_entry(pos, struct item, node);

		sum = sum * 10 + x->v;
		if (x->v == 2)
			list_del(pos);
	}
	assert_int_equal(sum, 23); /* 0, 2, 3 in order */
	assert_ptr_equal(list_first_entry(&head, struct item, node), &it[0]);
	assert_ptr_equal(list_next(&head, &it[0].node), &it[3].node);
	assert_null(list_next(&head, &it[3].node));
	list_add_head(&head, &it[1].node);
	assert_ptr_equal(list_pop(&head), &it[1].node);
	assert_ptr_equal(list_pop(&head), &it[0].node);
	assert_ptr_equal(list_pop(&head), &it[3].node);
	assert_null(list_pop(&head));
	assert_true(list_empty(&head));
}

static void test_rounding(void **st)
{
	(void)st;
	assert_int_equal(round_down(4097, 4096), 4096);
	assert_int_equal(round_up(4097, 4096), 8192);
	assert_int_equal(round_up(8192, 4096), 8192);
	assert_int_equal(round_up(0, 512), 0);
	assert_int_equal(round_up(1000, 384), 1152); /* not a power of 2 */
	assert_true(round_up(UINT64_MAX - 5, 4096) == UINT64_MAX);
	assert_true(is_aligned(8192, 4096));
	assert_false(is_aligned(100, 512));
	assert_true(is_aligned(12345, 1));
}

static int tmpfile_fd(char *path)
{
	int fd;

	strcpy(path, "/tmp/loopd-test-util.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	return fd;
}

static void test_full_loops_and_extents(void **st)
{
	char path[64], buf[8192], back[8192];
	uint64_t next;
	bool data;
	int fd = tmpfile_fd(path);

	(void)st;
	memset(buf, 0x5a, sizeof buf);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(pwrite_full(fd, buf, sizeof buf, 512 * 1024), 0);
	assert_int_equal(pread_full(fd, back, sizeof back, 512 * 1024), 0);
	assert_memory_equal(buf, back, sizeof buf);
	/* A read past the end is an error, never a short success. */
	assert_int_equal(pread_full(fd, back, sizeof back, (1 << 20) - 100),
			 -EIO);
	/* The walk: hole, data, hole (filesystems may round to blocks). */
	extent_at(fd, 0, 1 << 20, &data, &next);
	if (!data) { /* SEEK_DATA works here */
		assert_true(next <= 512 * 1024);
		extent_at(fd, 512 * 1024, 1 << 20, &data, &next);
		assert_true(data);
		assert_true(next >= 512 * 1024 + sizeof buf);
		extent_at(fd, next, 1 << 20, &data, &next);
		assert_false(data);
		assert_int_equal(next, 1 << 20);
	}
	/* Clipped to end. */
	extent_at(fd, 512 * 1024, 512 * 1024 + 100, &data, &next);
	assert_true(data);
	assert_int_equal(next, 512 * 1024 + 100);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_fifo_and_removal),
		cmocka_unit_test(test_rounding),
		cmocka_unit_test(test_full_loops_and_extents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
