/*
 * sel4vmm.native._ucslice: instruction-budget preemption at translation-block starts.
 *
 * unicorn's emu_start(count=N) counts with a code hook on every instruction (a helper
 * call and an exit check per instruction), which made a timer-armed guest run at ~0.58x.
 * Stopping from another thread is cheap but not replay-safe: unicorn checks for a stop
 * after every memory access and then runs the instruction again.  A block hook is called
 * before the block's first instruction, and the exit check at the start of every block
 * (gen_tb_start) comes right after it, so uc_emu_stop called here stops with the PC on
 * the block's first instruction and nothing of the block done: a boundary between
 * instructions, like a count.
 *
 * A Budget object is the user_data of one UC_HOOK_BLOCK hook whose callback is
 * BLOCK_CALLBACK (unicorn's uc_cb_hookcode_t, declared below so no unicorn header is
 * needed to build).  While armed, each block start takes its instructions (A64: 4 bytes
 * each) from `remaining`; the first block that starts with nothing left stops the engine
 * (and disarms, so an emu_start the backend makes afterwards is not stopped).  The
 * callback touches no Python object, so it needs no GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>

typedef struct uc_struct uc_engine;
typedef int (*uc_emu_stop_fn)(uc_engine *uc);

typedef struct {
	PyObject_HEAD
	long long remaining;		/* instructions this slice may still start */
	int armed;			/* whether a spent budget stops the engine */
	int expired;			/* set when the budget stopped the engine */
	unsigned long long blocks;	/* block starts seen while armed */
	unsigned long long started;	/* instructions of those blocks */
	uc_emu_stop_fn emu_stop;
} Budget;

static void on_block(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
{
	Budget *budget = user_data;
	unsigned long long instructions = size >> 2;

	if (!budget->armed)
		return;
	if (budget->remaining <= 0) {
		budget->armed = 0;
		budget->expired = 1;
		budget->emu_stop(uc);
		return;
	}
	if (instructions == 0)
		instructions = 1;
	budget->blocks++;
	budget->started += instructions;
	budget->remaining -= (long long)instructions;
}

static int budget_init(Budget *self, PyObject *args, PyObject *kwargs)
{
	static char *keywords[] = { "emu_stop", NULL };
	unsigned long long emu_stop = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "K", keywords, &emu_stop))
		return -1;
	if (emu_stop == 0) {
		PyErr_SetString(PyExc_ValueError, "emu_stop must be the address of uc_emu_stop");
		return -1;
	}
	self->emu_stop = (uc_emu_stop_fn)(uintptr_t)emu_stop;
	self->remaining = 0;
	self->armed = 0;
	self->expired = 0;
	self->blocks = 0;
	self->started = 0;
	return 0;
}

static PyMemberDef budget_members[] = {
	{ "remaining", T_LONGLONG, offsetof(Budget, remaining), 0,
	  "instructions the armed slice may still start" },
	{ "armed", T_INT, offsetof(Budget, armed), 0,
	  "nonzero: a block starting with nothing remaining stops the engine" },
	{ "expired", T_INT, offsetof(Budget, expired), 0,
	  "nonzero once the budget stopped the engine" },
	{ "blocks", T_ULONGLONG, offsetof(Budget, blocks), READONLY,
	  "block starts counted while armed" },
	{ "started", T_ULONGLONG, offsetof(Budget, started), READONLY,
	  "instructions of the blocks counted while armed" },
	{ NULL }
};

static PyTypeObject BudgetType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "sel4vmm.native._ucslice.Budget",
	.tp_doc = "An instruction budget checked at unicorn block starts (see _ucslice.c).",
	.tp_basicsize = sizeof(Budget),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)budget_init,
	.tp_members = budget_members,
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "sel4vmm.native._ucslice",
	.m_doc = "Instruction-budget preemption at unicorn block starts.",
	.m_size = -1,
};

PyMODINIT_FUNC PyInit__ucslice(void)
{
	PyObject *m;

	if (PyType_Ready(&BudgetType) < 0)
		return NULL;
	m = PyModule_Create(&module);
	if (m == NULL)
		return NULL;
	Py_INCREF(&BudgetType);
	if (PyModule_AddObject(m, "Budget", (PyObject *)&BudgetType) < 0 ||
	    PyModule_AddObject(m, "BLOCK_CALLBACK",
			       PyLong_FromVoidPtr((void *)(uintptr_t)on_block)) < 0) {
		Py_DECREF(&BudgetType);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
