/*
 * sel4vmm.native._ucmmio: a C trampoline for unicorn's MMIO callbacks.
 *
 * unicorn's Python binding turns every mmio_map access into a ctypes callback, and that
 * trampoline alone is most of a raw callback's cost.  Here unicorn calls C functions with
 * its own signatures (uc_cb_mmio_read_t / uc_cb_mmio_write_t from unicorn.h, declared
 * below so no unicorn header is needed to build) and they call the Python callable bound
 * to the accessed page with one reused fault object.
 *
 * A Trampoline object is the user_data of one uc_mmio_map range.  Per access:
 *   - the "general" path (a Python callable (address, width, is_write, value) -> int) is
 *     taken when the trampoline is in bypass mode, for a width the fault model does not
 *     have, or when neither a callable is bound to the page nor a default dispatch given;
 *   - otherwise the fault object is refilled (or made afresh when someone kept a reference
 *     to the last one) and the page's callable (else the default dispatch, e.g. the
 *     address space's handle_fault) is called with it; HANDLED completes the
 *     access here (a read answers fault.read_value), any other answer goes to
 *     complete(fault, result) -> int;
 *   - when `stopping` is set after the access (the device asked the vCPU to stop inside
 *     its access, so unicorn will run the instruction again), record(address, width,
 *     is_write, value, answer) is called so the backend can replay the answer.
 * A Python exception cannot cross unicorn: the first one is kept, the engine is stopped
 * (uc_emu_stop, whose address the Python side passes in) and Trampoline.check() raises it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

#include "faultslots.h"

typedef struct uc_struct uc_engine;
typedef int (*uc_emu_stop_fn)(uc_engine *uc);

static PyObject *str_address, *str_width, *str_is_write, *str_value, *str_read_value,
	*str_reservation;

typedef struct {
	PyObject_HEAD
	uint64_t base;
	uint64_t size;
	PyObject *pages;	/* dict: page number -> callable(fault) -> result */
	PyObject *dispatch;	/* callable(fault) -> result for unbound pages, or None */
	PyObject *general;	/* callable(address, width, is_write, value) -> int */
	PyObject *complete;	/* callable(fault, result) -> int */
	PyObject *record;	/* callable(address, width, is_write, value, answer) or None */
	PyObject *fault_type;	/* MemoryFault */
	PyObject *vcpu;		/* passed to fault_type as vcpu */
	PyObject *handled;	/* FaultResult.HANDLED */
	PyObject *fault;	/* the reused fault object, or NULL */
	PyObject *error;	/* the first exception raised inside a callback */
	uc_emu_stop_fn emu_stop;
	/* Where a reused fault is refilled (faultslots.h); without them, through setattr. */
	struct fault_slots slots;
	int bypass;
	int stopping;
	unsigned long long fast_accesses;
	unsigned long long general_accesses;
	unsigned long long faults_made;
} Trampoline;

static int width_modelled(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

/* Keep the first exception and stop the engine: unicorn cannot unwind Python errors. */
static void fail(Trampoline *t, uc_engine *uc)
{
	if (t->error == NULL) {
		PyObject *type, *value, *traceback;
		PyErr_Fetch(&type, &value, &traceback);
		PyErr_NormalizeException(&type, &value, &traceback);
		if (traceback != NULL && value != NULL)
			PyException_SetTraceback(value, traceback);
		Py_XDECREF(type);
		Py_XDECREF(traceback);
		t->error = value;
	} else {
		PyErr_Clear();
	}
	if (t->emu_stop != NULL)
		t->emu_stop(uc);
}

static int answer_of(PyObject *object, uint64_t *answer)
{
	if (object == Py_None) {
		*answer = 0;
		return 0;
	}
	*answer = PyLong_AsUnsignedLongLongMask(object);
	return *answer == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

/* A fault for this access: the previous one refilled when only we hold it. */
static PyObject *fault_for(Trampoline *t, PyObject *address, PyObject *width, int is_write,
			   PyObject *value)
{
	PyObject *fault = t->fault;
	if (fault_reusable(fault, &t->slots)) {
		fault_refill(fault, &t->slots, address, width, is_write, value);
		return Py_NewRef(fault);
	}
	if (fault != NULL && Py_REFCNT(fault) == 1) {
		if (PyObject_SetAttr(fault, str_address, address) < 0 ||
		    PyObject_SetAttr(fault, str_width, width) < 0 ||
		    PyObject_SetAttr(fault, str_is_write, is_write ? Py_True : Py_False) < 0 ||
		    PyObject_SetAttr(fault, str_value, value) < 0 ||
		    PyObject_SetAttr(fault, str_read_value, Py_None) < 0 ||
		    PyObject_SetAttr(fault, str_reservation, Py_None) < 0)
			return NULL;
		return Py_NewRef(fault);
	}
	Py_CLEAR(t->fault); /* a device kept it: it is theirs now */
	PyObject *args[5] = { address, width, is_write ? Py_True : Py_False, value, t->vcpu };
	fault = PyObject_Vectorcall(t->fault_type, args, 5, NULL);
	if (fault == NULL)
		return NULL;
	t->faults_made++;
	t->fault = Py_NewRef(fault);
	return fault;
}

static int mmio_access(Trampoline *t, uc_engine *uc, uint64_t offset, unsigned size, int is_write,
		  uint64_t value, uint64_t *answer)
{
	int status = -1;
	if (t->general == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "Trampoline used before __init__");
		fail(t, uc);
		return -1;
	}
	PyObject *address = PyLong_FromUnsignedLongLong(t->base + offset);
	PyObject *width = PyLong_FromUnsignedLong(size);
	PyObject *value_object = PyLong_FromUnsignedLongLong(value);
	PyObject *fault = NULL, *result = NULL, *out = NULL;
	if (address == NULL || width == NULL || value_object == NULL)
		goto done;
	PyObject *dispatch = NULL;
	if (!t->bypass && width_modelled(size)) {
		if (PyDict_GET_SIZE(t->pages) > 0) {
			PyObject *page = PyLong_FromUnsignedLongLong((t->base + offset) >> 12);
			if (page == NULL)
				goto done;
			dispatch = PyDict_GetItemWithError(t->pages, page); /* borrowed */
			Py_DECREF(page);
			if (dispatch == NULL && PyErr_Occurred())
				goto done;
		}
		if (dispatch == NULL && t->dispatch != Py_None)
			dispatch = t->dispatch;
	}
	if (dispatch == NULL) {
		t->general_accesses++;
		PyObject *args[4] = { address, width, is_write ? Py_True : Py_False, value_object };
		out = PyObject_Vectorcall(t->general, args, 4, NULL);
		if (out == NULL || answer_of(out, answer) < 0)
			goto done;
	} else {
		t->fast_accesses++;
		fault = fault_for(t, address, width, is_write, value_object);
		if (fault == NULL)
			goto done;
		Py_INCREF(dispatch); /* the callable may unbind its own page */
		result = PyObject_CallOneArg(dispatch, fault);
		Py_DECREF(dispatch);
		if (result == NULL)
			goto done;
		if (result == t->handled) {
			if (is_write) {
				*answer = 0;
			} else {
				out = PyObject_GetAttr(fault, str_read_value);
				if (out == NULL || answer_of(out, answer) < 0)
					goto done;
			}
		} else {
			PyObject *args[2] = { fault, result };
			out = PyObject_Vectorcall(t->complete, args, 2, NULL);
			if (out == NULL || answer_of(out, answer) < 0)
				goto done;
		}
		if (t->stopping && t->record != Py_None) {
			PyObject *answer_object = PyLong_FromUnsignedLongLong(*answer);
			if (answer_object == NULL)
				goto done;
			PyObject *args[5] = { address, width, is_write ? Py_True : Py_False,
					      value_object, answer_object };
			PyObject *recorded = PyObject_Vectorcall(t->record, args, 5, NULL);
			Py_DECREF(answer_object);
			if (recorded == NULL)
				goto done;
			Py_DECREF(recorded);
		}
	}
	status = 0;
done:
	if (status < 0)
		fail(t, uc);
	Py_XDECREF(address);
	Py_XDECREF(width);
	Py_XDECREF(value_object);
	Py_XDECREF(fault);
	Py_XDECREF(result);
	Py_XDECREF(out);
	return status;
}

/* uc_cb_mmio_read_t */
static uint64_t trampoline_read(uc_engine *uc, uint64_t offset, unsigned size, void *user_data)
{
	Trampoline *t = user_data;
	uint64_t answer = 0;
	PyGILState_STATE gil = PyGILState_Ensure();
	if (t->error == NULL && mmio_access(t, uc, offset, size, 0, 0, &answer) < 0)
		answer = 0;
	PyGILState_Release(gil);
	return answer;
}

/* uc_cb_mmio_write_t */
static void trampoline_write(uc_engine *uc, uint64_t offset, unsigned size, uint64_t value,
			     void *user_data)
{
	Trampoline *t = user_data;
	uint64_t ignored;
	PyGILState_STATE gil = PyGILState_Ensure();
	if (t->error == NULL)
		mmio_access(t, uc, offset, size, 1, value, &ignored);
	PyGILState_Release(gil);
}

static int Trampoline_init(Trampoline *t, PyObject *args, PyObject *kwargs)
{
	static char *keywords[] = { "base",	  "size",     "dispatch", "general",
				    "complete",	  "record",   "fault_type", "vcpu",
				    "handled",	  "emu_stop", NULL };
	unsigned long long base, size, emu_stop;
	PyObject *dispatch, *general, *complete, *record, *fault_type, *vcpu, *handled;
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "KKOOOOOOOK", keywords, &base, &size,
					 &dispatch, &general, &complete, &record, &fault_type,
					 &vcpu, &handled, &emu_stop))
		return -1;
	if (!PyCallable_Check(general) || !PyCallable_Check(complete) ||
	    (record != Py_None && !PyCallable_Check(record)) ||
	    (dispatch != Py_None && !PyCallable_Check(dispatch))) {
		PyErr_SetString(PyExc_TypeError,
				"dispatch, general, complete and record must be callable");
		return -1;
	}
	PyObject *pages = PyDict_New();
	if (pages == NULL)
		return -1;
	t->base = base;
	t->size = size;
	Py_XSETREF(t->pages, pages);
	Py_XSETREF(t->dispatch, Py_NewRef(dispatch));
	Py_XSETREF(t->general, Py_NewRef(general));
	Py_XSETREF(t->complete, Py_NewRef(complete));
	Py_XSETREF(t->record, Py_NewRef(record));
	Py_XSETREF(t->fault_type, Py_NewRef(fault_type));
	Py_XSETREF(t->vcpu, Py_NewRef(vcpu));
	Py_XSETREF(t->handled, Py_NewRef(handled));
	t->emu_stop = (uc_emu_stop_fn)(uintptr_t)emu_stop;
	if (fault_slots_find(fault_type, &t->slots) < 0)
		return -1;
	return 0;
}

static int Trampoline_traverse(Trampoline *t, visitproc visit, void *arg)
{
	Py_VISIT(t->pages);
	Py_VISIT(t->dispatch);
	Py_VISIT(t->general);
	Py_VISIT(t->complete);
	Py_VISIT(t->record);
	Py_VISIT(t->fault_type);
	Py_VISIT(t->vcpu);
	Py_VISIT(t->handled);
	Py_VISIT(t->fault);
	Py_VISIT(t->error);
	return 0;
}

static int Trampoline_clear(Trampoline *t)
{
	Py_CLEAR(t->pages);
	Py_CLEAR(t->dispatch);
	Py_CLEAR(t->general);
	Py_CLEAR(t->complete);
	Py_CLEAR(t->record);
	Py_CLEAR(t->fault_type);
	Py_CLEAR(t->vcpu);
	Py_CLEAR(t->handled);
	Py_CLEAR(t->fault);
	Py_CLEAR(t->error);
	return 0;
}

static void Trampoline_dealloc(Trampoline *t)
{
	PyObject_GC_UnTrack(t);
	Trampoline_clear(t);
	Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *Trampoline_bind(Trampoline *t, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "bind(page, dispatch)");
		return NULL;
	}
	if (args[1] == Py_None) {
		if (PyDict_DelItem(t->pages, args[0]) < 0) {
			if (!PyErr_ExceptionMatches(PyExc_KeyError))
				return NULL;
			PyErr_Clear();
		}
	} else if (PyDict_SetItem(t->pages, args[0], args[1]) < 0) {
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *Trampoline_check(Trampoline *t, PyObject *unused)
{
	PyObject *error = t->error;
	if (error == NULL)
		Py_RETURN_NONE;
	t->error = NULL;
	PyErr_SetObject((PyObject *)Py_TYPE(error), error);
	Py_DECREF(error);
	return NULL;
}

static PyMethodDef Trampoline_methods[] = {
	{ "bind", (PyCFunction)(void (*)(void))Trampoline_bind, METH_FASTCALL,
	  "bind(page, dispatch): page number -> callable(fault) -> FaultResult; None unbinds." },
	{ "check", (PyCFunction)Trampoline_check, METH_NOARGS,
	  "Raise the first exception a callback raised inside unicorn (and forget it)." },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef Trampoline_members[] = {
	{ "bypass", T_INT, offsetof(Trampoline, bypass), 0,
	  "Non-zero: every access takes the general path." },
	{ "stopping", T_INT, offsetof(Trampoline, stopping), 0,
	  "Non-zero: the vCPU was asked to stop; fast accesses are passed to record." },
	{ "fast_accesses", T_ULONGLONG, offsetof(Trampoline, fast_accesses), READONLY, NULL },
	{ "general_accesses", T_ULONGLONG, offsetof(Trampoline, general_accesses), READONLY,
	  NULL },
	{ "faults_made", T_ULONGLONG, offsetof(Trampoline, faults_made), READONLY,
	  "Fault objects created (one, unless devices keep references)." },
	{ NULL, 0, 0, 0, NULL },
};

static PyTypeObject TrampolineType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sel4vmm.native._ucmmio.Trampoline",
	.tp_basicsize = sizeof(Trampoline),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "The user_data of one uc_mmio_map range (see sel4vmm.native.unicorn_mmio).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Trampoline_init,
	.tp_traverse = (traverseproc)Trampoline_traverse,
	.tp_clear = (inquiry)Trampoline_clear,
	.tp_dealloc = (destructor)Trampoline_dealloc,
	.tp_methods = Trampoline_methods,
	.tp_members = Trampoline_members,
};

static struct PyModuleDef ucmmio_module = {
	PyModuleDef_HEAD_INIT, "sel4vmm.native._ucmmio",
	"unicorn MMIO callbacks in C (see sel4vmm.native.unicorn_mmio).", -1, NULL,
};

static int intern(PyObject **slot, const char *text)
{
	*slot = PyUnicode_InternFromString(text);
	return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__ucmmio(void)
{
	if (intern(&str_address, "address") < 0 || intern(&str_width, "width") < 0 ||
	    intern(&str_is_write, "is_write") < 0 || intern(&str_value, "value") < 0 ||
	    intern(&str_read_value, "read_value") < 0 ||
	    intern(&str_reservation, "reservation") < 0)
		return NULL;
	if (PyType_Ready(&TrampolineType) < 0)
		return NULL;
	PyObject *module = PyModule_Create(&ucmmio_module);
	if (module == NULL)
		return NULL;
	if (PyModule_AddObjectRef(module, "Trampoline", (PyObject *)&TrampolineType) < 0 ||
	    PyModule_AddObject(module, "READ_CALLBACK",
			       PyLong_FromVoidPtr((void *)(uintptr_t)trampoline_read)) < 0 ||
	    PyModule_AddObject(module, "WRITE_CALLBACK",
			       PyLong_FromVoidPtr((void *)(uintptr_t)trampoline_write)) < 0) {
		Py_DECREF(module);
		return NULL;
	}
	return module;
}
