/*
 * pid layout: bits 63..48 node, 47..28 generation, 27..0 slot index.
 * Generation 0 is never used, so no local pid is 0 (TR_PID_NONE). A slot
 * runs generations 1 to TR__PID_GEN_MASK and is then retired (actor.c).
 */
#ifndef TR_RUNTIME_PID_H
#define TR_RUNTIME_PID_H

#include <stdint.h>

#include <troupe/pid.h>

#define TR__PID_SLOT_BITS  28
#define TR__PID_GEN_BITS   20
#define TR__PID_SLOT_MASK  ((UINT64_C(1) << TR__PID_SLOT_BITS) - 1)
#define TR__PID_GEN_MASK   ((UINT64_C(1) << TR__PID_GEN_BITS) - 1)
#define TR__PID_NODE_SHIFT (TR__PID_SLOT_BITS + TR__PID_GEN_BITS)

static inline uint64_t
tr__pid_make(uint32_t node, uint32_t gen, uint32_t slot)
{
	return ((uint64_t)node << TR__PID_NODE_SHIFT) |
	       (((uint64_t)gen & TR__PID_GEN_MASK) << TR__PID_SLOT_BITS) |
	       ((uint64_t)slot & TR__PID_SLOT_MASK);
}

static inline uint32_t
tr__pid_slot(uint64_t v)
{
	return (uint32_t)(v & TR__PID_SLOT_MASK);
}

static inline uint32_t
tr__pid_node(uint64_t v)
{
	return (uint32_t)(v >> TR__PID_NODE_SHIFT);
}

#endif /* TR_RUNTIME_PID_H */
