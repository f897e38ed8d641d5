/* SPDX-License-Identifier: MIT */
/*
 * list.h: one intrusive doubly linked list for the whole project, in the
 * manner of the kernel's list.h.  A list is a sentinel node; an element
 * embeds a struct list_node and is found again with list_entry().  A node
 * that is on no list has next == NULL (list_del() leaves it so), so
 * list_linked() tells membership without a separate flag.  Not
 * thread-safe: the owner of the list holds whatever lock protects it.
 * Tested by tests/unit/test-util.c.
 */
#ifndef LOOPD_UTIL_LIST_H
#define LOOPD_UTIL_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "util/compiler.h"

struct list_node {
	struct list_node *next, *prev;
};

static inline void list_init(struct list_node *head)
{
	head->next = head->prev = head;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

/* Whether n is on some list. */
static inline bool list_linked(const struct list_node *n)
{
	return n->next != NULL;
}

static inline void list_insert(struct list_node *prev, struct list_node *n,
			       struct list_node *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static inline void list_add_tail(struct list_node *head, struct list_node *n)
{
	list_insert(head->prev, n, head);
}

static inline void list_add_head(struct list_node *head, struct list_node *n)
{
	list_insert(head, n, head->next);
}

/*
 * The static analyzer cannot follow the aliasing of an intrusive list: it
 * does not see that a node just unlinked (and maybe freed) is no longer
 * head->next.  The two NOLINTs below are for that, and only that.
 */
static inline void list_del(struct list_node *n)
{
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): see above */
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = NULL;
}

/* The first node, or NULL when the list is empty. */
static inline struct list_node *list_first(const struct list_node *head)
{
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): see list_del() */
	return list_empty(head) ? NULL : head->next;
}

/* The node after n on head's list, or NULL at the end. */
static inline struct list_node *list_next(const struct list_node *head,
					  const struct list_node *n)
{
	return n->next == head ? NULL : n->next;
}

/* Take the first node off the list; NULL when it is empty. */
static inline struct list_node *list_pop(struct list_node *head)
{
	struct list_node *n = list_first(head);

	if (n)
		list_del(n);
	return n;
}

#define list_entry(node, type, member) container_of(node, type, member)

/* The first element, or NULL. */
#define list_first_entry(head, type, member)                                   \
	({                                                                     \
		struct list_node *n_ = list_first(head);                       \
		n_ ? list_entry(n_, type, member) : (type *)NULL;              \
	})

/* Iterate; the current node may be removed (tmp holds the next). */
#define list_for_each_safe(pos, tmp, head)                                     \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);       \
	     (pos) = (tmp), (tmp) = (pos)->next)

#define list_for_each(pos, head)                                               \
	for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif /* LOOPD_UTIL_LIST_H */
