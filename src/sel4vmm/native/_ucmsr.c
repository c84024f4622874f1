/*
 * sel4vmm.native._ucmsr: a C filter in front of unicorn's MSR instruction hook.
 *
 * unicorn's UC_HOOK_INSN for MSR runs on every `msr <sysreg>, xN` and cannot be bounded to
 * a register, and the binding turns each call into a ctypes callback: a Linux boot makes
 * ~96,000 of them, ~84,000 for `msr daif` alone, while the VMM only owns the timer's
 * registers.  FILTER_CALLBACK has unicorn's uc_cb_insn_sys_t signature (declared below so
 * no unicorn header is needed to build): for a register not in the filter's set it answers
 * 0 at once (unicorn performs the write itself); for one in the set it takes the GIL and
 * calls the Python callable the way the binding does — callback(uc, reg, cp, None) with cp
 * built by cp_type(crn, crm, op0, op1, op2, val) — and returns its answer.  An exception
 * is handled as the binding's uccallback does: the first one is stored in the Uc object's
 * _hook_exception (which the binding's emu_start raises) and the engine is stopped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>

typedef struct uc_struct uc_engine;
typedef int (*uc_emu_stop_fn)(uc_engine *uc);

/* unicorn's uc_arm64_cp_reg (include/unicorn/arm64.h). */
typedef struct {
	uint32_t crn;
	uint32_t crm;
	uint32_t op0;
	uint32_t op1;
	uint32_t op2;
	uint64_t val;
} cp_reg;

#define MAX_REGISTERS 32

typedef struct {
	PyObject_HEAD
	PyObject *uc;		/* the binding's Uc object */
	PyObject *callback;	/* callback(uc, reg, cp, None) -> int */
	PyObject *cp_type;	/* cp_type(crn, crm, op0, op1, op2, val) */
	uc_emu_stop_fn emu_stop;
	uint64_t keys[MAX_REGISTERS];
	Py_ssize_t nkeys;
	unsigned long long passed;
	unsigned long long filtered;
} MsrFilter;

static uint64_t key_of(unsigned op0, unsigned op1, unsigned crn, unsigned crm, unsigned op2)
{
	return ((uint64_t)op0 << 32) | ((uint64_t)op1 << 24) | ((uint64_t)crn << 16) |
	       ((uint64_t)crm << 8) | op2;
}

static void keep_exception(MsrFilter *f, uc_engine *uc)
{
	PyObject *type, *value, *traceback, *held;

	PyErr_Fetch(&type, &value, &traceback);
	PyErr_NormalizeException(&type, &value, &traceback);
	if (traceback != NULL && value != NULL)
		PyException_SetTraceback(value, traceback);
	held = PyObject_GetAttrString(f->uc, "_hook_exception");
	if (held == NULL)
		PyErr_Clear();
	if ((held == NULL || held == Py_None) && value != NULL) {
		if (PyObject_SetAttrString(f->uc, "_hook_exception", value) < 0)
			PyErr_Clear();
	}
	Py_XDECREF(held);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(traceback);
	f->emu_stop(uc);
}

static uint32_t on_msr(uc_engine *uc, int reg, const cp_reg *cp, void *user_data)
{
	MsrFilter *f = user_data;
	uint64_t key = key_of(cp->op0, cp->op1, cp->crn, cp->crm, cp->op2);
	PyGILState_STATE gil;
	PyObject *value, *result = NULL;
	uint32_t answer = 0;
	Py_ssize_t i;

	for (i = 0; i < f->nkeys; i++)
		if (f->keys[i] == key)
			break;
	if (i == f->nkeys) {
		f->filtered++;
		return 0;
	}
	gil = PyGILState_Ensure();
	f->passed++;
	value = PyObject_CallFunction(f->cp_type, "IIIIIK", cp->crn, cp->crm, cp->op0, cp->op1,
				      cp->op2, (unsigned long long)cp->val);
	if (value != NULL) {
		PyObject *number = PyLong_FromLong(reg);
		if (number != NULL) {
			result = PyObject_CallFunctionObjArgs(f->callback, f->uc, number, value,
							      Py_None, NULL);
			Py_DECREF(number);
		}
		Py_DECREF(value);
	}
	if (result != NULL) {
		answer = (uint32_t)PyLong_AsUnsignedLongMask(result);
		Py_DECREF(result);
	}
	if (PyErr_Occurred()) {
		answer = 0;
		keep_exception(f, uc);
	}
	PyGILState_Release(gil);
	return answer;
}

static int filter_init(MsrFilter *self, PyObject *args, PyObject *kwargs)
{
	static char *keywords[] = { "uc", "callback", "cp_type", "registers", "emu_stop", NULL };
	PyObject *uc, *callback, *cp_type, *registers, *sequence;
	unsigned long long emu_stop = 0;
	Py_ssize_t i, n;

	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOK", keywords, &uc, &callback, &cp_type,
					 &registers, &emu_stop))
		return -1;
	if (emu_stop == 0) {
		PyErr_SetString(PyExc_ValueError, "emu_stop must be the address of uc_emu_stop");
		return -1;
	}
	sequence = PySequence_Fast(registers, "registers must be a sequence of 5-tuples");
	if (sequence == NULL)
		return -1;
	n = PySequence_Fast_GET_SIZE(sequence);
	if (n > MAX_REGISTERS) {
		Py_DECREF(sequence);
		PyErr_Format(PyExc_ValueError, "at most %d registers", MAX_REGISTERS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned op0, op1, crn, crm, op2;
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(sequence, i), "IIIII", &op0, &op1, &crn,
				      &crm, &op2)) {
			Py_DECREF(sequence);
			return -1;
		}
		self->keys[i] = key_of(op0, op1, crn, crm, op2);
	}
	Py_DECREF(sequence);
	self->nkeys = n;
	Py_INCREF(uc);
	Py_XSETREF(self->uc, uc);
	Py_INCREF(callback);
	Py_XSETREF(self->callback, callback);
	Py_INCREF(cp_type);
	Py_XSETREF(self->cp_type, cp_type);
	self->emu_stop = (uc_emu_stop_fn)(uintptr_t)emu_stop;
	return 0;
}

static int filter_traverse(MsrFilter *self, visitproc visit, void *arg)
{
	Py_VISIT(self->uc);
	Py_VISIT(self->callback);
	Py_VISIT(self->cp_type);
	return 0;
}

static int filter_clear(MsrFilter *self)
{
	Py_CLEAR(self->uc);
	Py_CLEAR(self->callback);
	Py_CLEAR(self->cp_type);
	return 0;
}

static void filter_dealloc(MsrFilter *self)
{
	PyObject_GC_UnTrack(self);
	filter_clear(self);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef filter_members[] = {
	{ "passed", T_ULONGLONG, offsetof(MsrFilter, passed), READONLY,
	  "MSR writes to a register of the set, passed to the callback" },
	{ "filtered", T_ULONGLONG, offsetof(MsrFilter, filtered), READONLY,
	  "MSR writes to other registers, left to unicorn without a call" },
	{ NULL }
};

static PyTypeObject MsrFilterType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "sel4vmm.native._ucmsr.MsrFilter",
	.tp_doc = "The user_data of a filtered MSR hook (see _ucmsr.c).",
	.tp_basicsize = sizeof(MsrFilter),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)filter_init,
	.tp_traverse = (traverseproc)filter_traverse,
	.tp_clear = (inquiry)filter_clear,
	.tp_dealloc = (destructor)filter_dealloc,
	.tp_members = filter_members,
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "sel4vmm.native._ucmsr",
	.m_doc = "A C register filter in front of unicorn's MSR instruction hook.",
	.m_size = -1,
};

PyMODINIT_FUNC PyInit__ucmsr(void)
{
	PyObject *m;

	if (PyType_Ready(&MsrFilterType) < 0)
		return NULL;
	m = PyModule_Create(&module);
	if (m == NULL)
		return NULL;
	Py_INCREF(&MsrFilterType);
	if (PyModule_AddObject(m, "MsrFilter", (PyObject *)&MsrFilterType) < 0 ||
	    PyModule_AddObject(m, "FILTER_CALLBACK",
			       PyLong_FromVoidPtr((void *)(uintptr_t)on_msr)) < 0) {
		Py_DECREF(&MsrFilterType);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
