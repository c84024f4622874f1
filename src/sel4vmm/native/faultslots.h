/*
 * Reusing a sel4vmm.memory.MemoryFault from C (shared by the native extensions).
 *
 * One fault object is made per emulated access on the Python paths; the C paths refill the
 * previous one instead when nothing else holds a reference to it (a device that keeps a
 * fault keeps that object untouched, and the next access gets a fresh one).  MemoryFault
 * declares __slots__, so a refill stores straight into the slots whose offsets its member
 * descriptors give -- what `fault.address = ...` does, without the attribute lookup.  The
 * vcpu slot is never refilled: a C path serves one vCPU.
 */
#ifndef SEL4VMM_NATIVE_FAULTSLOTS_H
#define SEL4VMM_NATIVE_FAULTSLOTS_H

#include <Python.h>
#include <structmember.h>
#include <string.h>

enum { SLOT_ADDRESS, SLOT_WIDTH, SLOT_IS_WRITE, SLOT_VALUE, SLOT_READ_VALUE, SLOT_RESERVATION,
       SLOT_COUNT };

struct fault_slots {
	PyTypeObject *type; /* the type the offsets belong to; NULL: refill not possible */
	Py_ssize_t offset[SLOT_COUNT];
};

/* Find the slot offsets of `fault_type`; leaves slots->type NULL when they are not all
 * plain object slots.  Returns -1 with an exception set on error. */
static int fault_slots_find(PyObject *fault_type, struct fault_slots *slots)
{
	static const char *names[SLOT_COUNT] = { "address", "width",      "is_write",
						 "value",   "read_value", "reservation" };
	memset(slots, 0, sizeof(*slots));
	if (!PyType_Check(fault_type))
		return 0;
	for (int i = 0; i < SLOT_COUNT; i++) {
		PyObject *descr = PyDict_GetItemString(((PyTypeObject *)fault_type)->tp_dict,
						       names[i]); /* borrowed */
		if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
		    ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX)
			return 0;
		slots->offset[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
	}
	slots->type = (PyTypeObject *)fault_type;
	return 0;
}

static inline void fault_slot_store(PyObject *fault, Py_ssize_t offset, PyObject *value)
{
	PyObject **slot = (PyObject **)((char *)fault + offset);
	Py_XSETREF(*slot, Py_NewRef(value));
}

/* Whether `fault` may be refilled: ours alone, and of the type the offsets belong to. */
static inline int fault_reusable(PyObject *fault, const struct fault_slots *slots)
{
	return fault != NULL && slots->type != NULL && Py_REFCNT(fault) == 1 &&
	       Py_TYPE(fault) == slots->type;
}

/* Refill a reusable fault as MemoryFault(address, width, is_write, value) would be. */
static inline void fault_refill(PyObject *fault, const struct fault_slots *slots,
				PyObject *address, PyObject *width, int is_write, PyObject *value)
{
	fault_slot_store(fault, slots->offset[SLOT_ADDRESS], address);
	fault_slot_store(fault, slots->offset[SLOT_WIDTH], width);
	fault_slot_store(fault, slots->offset[SLOT_IS_WRITE], is_write ? Py_True : Py_False);
	fault_slot_store(fault, slots->offset[SLOT_VALUE], value);
	fault_slot_store(fault, slots->offset[SLOT_READ_VALUE], Py_None);
	fault_slot_store(fault, slots->offset[SLOT_RESERVATION], Py_None);
}

#endif
