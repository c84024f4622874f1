/*
 * sel4vmm.native._kvmexit: the KVM vCPU exit loop in C.
 *
 * The Python exit loop (sel4vmm/backends/kvm/run.py) spends more time per MMIO exit in the
 * interpreter's ctypes ioctl and run-page decoding than the VMM logic takes.  This loop
 * keeps KVM_RUN and the decoding in C and calls back into Python only for what Python must
 * do: each MMIO exit becomes a MemoryFault handed to the address space's handle_fault (the
 * VMM logic is the memory core's own, unchanged), and a HANDLED answer is completed here.
 * Everything else -- other exit reasons, EINTR (kicks, timeouts, signals), any fault
 * result but HANDLED -- returns to the Python loop, which deals with it exactly as the
 * pure-Python path does.
 *
 * The fault object is reused from one exit to the next while nothing else holds it
 * (faultslots.h), so a device that keeps a fault keeps it unchanged.
 *
 * The GIL is released around KVM_RUN so that another thread (the timeout timer, a device
 * thread) can ask the loop to stop while the guest runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "faultslots.h"

static PyObject *str_read_value;
/* The slot offsets of the last fault type seen (one type in practice: MemoryFault). */
static PyObject *slots_type;
static struct fault_slots slots;

/* run(fd, run_page, handle_fault, fault_type, vcpu, handled)
 *     -> (reason, exits, fault, result)
 *
 * reason  a KVM exit reason the caller must handle (KVM_EXIT_INTR for EINTR), or
 *         KVM_EXIT_MMIO with the fault and handle_fault's answer when that answer is not
 *         HANDLED; a negative errno when KVM_RUN failed.  When MemoryFault refuses the
 *         access (a width it does not model) ``fault`` is None and ``result`` is the error.
 * exits   how many KVM exits this call took (the returned one included).
 */
static PyObject *kvmexit_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 6) {
		PyErr_SetString(PyExc_TypeError,
				"run(fd, run_page, handle_fault, fault_type, vcpu, handled)");
		return NULL;
	}
	long fd = PyLong_AsLong(args[0]);
	if (fd == -1 && PyErr_Occurred())
		return NULL;
	PyObject *handle_fault = args[2], *fault_type = args[3], *vcpu = args[4];
	PyObject *handled = args[5];
	Py_buffer page;
	if (PyObject_GetBuffer(args[1], &page, PyBUF_WRITABLE) < 0)
		return NULL;
	if ((size_t)page.len < sizeof(struct kvm_run)) {
		PyBuffer_Release(&page);
		PyErr_SetString(PyExc_ValueError, "run_page is smaller than struct kvm_run");
		return NULL;
	}
	if (fault_type != slots_type) {
		struct fault_slots found;
		if (fault_slots_find(fault_type, &found) < 0) {
			PyBuffer_Release(&page);
			return NULL;
		}
		Py_XSETREF(slots_type, Py_NewRef(fault_type));
		slots = found;
	}
	struct kvm_run *run = page.buf;
	unsigned long long exits = 0;
	long reason;
	PyObject *fault = NULL, *result = NULL, *reuse = NULL;

	for (;;) {
		int rc, saved_errno;
		/* A signal that arrived while the GIL was held (between two KVM_RUNs) has not
		 * interrupted any ioctl: run its Python handler now, as the Python loop would
		 * at its next bytecode (Ctrl-C raises KeyboardInterrupt here). */
		if (PyErr_CheckSignals() < 0)
			goto error;
		Py_BEGIN_ALLOW_THREADS
		rc = ioctl((int)fd, KVM_RUN, 0);
		saved_errno = errno;
		Py_END_ALLOW_THREADS
		exits++;
		if (rc < 0) {
			reason = saved_errno == EINTR ? KVM_EXIT_INTR : -(long)saved_errno;
			break;
		}
		reason = run->exit_reason;
		if (reason != KVM_EXIT_MMIO)
			break;

		uint32_t len = run->mmio.len;
		int is_write = run->mmio.is_write != 0;
		uint64_t value = 0;
		if (is_write && len <= sizeof(value))
			memcpy(&value, run->mmio.data, len); /* little-endian host: x86_64 only */
		PyObject *call_args[5];
		call_args[0] = PyLong_FromUnsignedLongLong(run->mmio.phys_addr);
		call_args[1] = PyLong_FromUnsignedLong(len);
		call_args[2] = is_write ? Py_True : Py_False;
		call_args[3] = PyLong_FromUnsignedLongLong(value);
		call_args[4] = vcpu;
		if (call_args[0] == NULL || call_args[1] == NULL || call_args[3] == NULL) {
			Py_XDECREF(call_args[0]);
			Py_XDECREF(call_args[1]);
			Py_XDECREF(call_args[3]);
			goto error;
		}
		if ((len == 1 || len == 2 || len == 4 || len == 8) && fault_reusable(reuse, &slots)) {
			fault_refill(reuse, &slots, call_args[0], call_args[1], is_write,
				     call_args[3]);
			fault = reuse;
			reuse = NULL;
		} else {
			Py_CLEAR(reuse);
			fault = PyObject_Vectorcall(fault_type, call_args, 5, NULL);
		}
		Py_DECREF(call_args[0]);
		Py_DECREF(call_args[1]);
		Py_DECREF(call_args[3]);
		if (fault == NULL) {
			if (!PyErr_ExceptionMatches(PyExc_ValueError))
				goto error;
			/* The fault model refuses this width: the caller stops the VM with it. */
			PyObject *type, *traceback;
			PyErr_Fetch(&type, &result, &traceback);
			PyErr_NormalizeException(&type, &result, &traceback);
			Py_XDECREF(type);
			Py_XDECREF(traceback);
			break;
		}
		result = PyObject_CallOneArg(handle_fault, fault);
		if (result == NULL)
			goto error;
		if (result != handled)
			break; /* IGNORE, RESTART, UNHANDLED, ERROR: the Python loop's business */
		if (!is_write) {
			PyObject *read_value = PyObject_GetAttr(fault, str_read_value);
			if (read_value == NULL)
				goto error;
			uint64_t answer = 0;
			if (read_value != Py_None) {
				answer = PyLong_AsUnsignedLongLongMask(read_value);
				if (answer == (uint64_t)-1 && PyErr_Occurred()) {
					Py_DECREF(read_value);
					goto error;
				}
			}
			Py_DECREF(read_value);
			memcpy(run->mmio.data, &answer, sizeof(answer));
		}
		reuse = fault; /* refilled at the next exit if nobody else took a reference */
		fault = NULL;
		Py_CLEAR(result);
	}
	Py_XDECREF(reuse);
	PyBuffer_Release(&page);
	return Py_BuildValue("(lKNN)", reason, exits, fault != NULL ? fault : Py_NewRef(Py_None),
			     result != NULL ? result : Py_NewRef(Py_None));

error:
	Py_XDECREF(reuse);
	Py_XDECREF(fault);
	Py_XDECREF(result);
	PyBuffer_Release(&page);
	return NULL;
}

static PyMethodDef kvmexit_methods[] = {
	{ "run", (PyCFunction)(void (*)(void))kvmexit_run, METH_FASTCALL,
	  "run(fd, run_page, handle_fault, fault_type, vcpu, handled) -> "
	  "(reason, exits, fault, result)\n\n"
	  "Run the vCPU until an exit the Python loop must handle; MMIO exits whose fault "
	  "handle_fault answers HANDLED are completed here." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef kvmexit_module = {
	PyModuleDef_HEAD_INIT, "sel4vmm.native._kvmexit",
	"The KVM vCPU exit loop in C (see sel4vmm.native).", -1, kvmexit_methods,
};

PyMODINIT_FUNC PyInit__kvmexit(void)
{
	str_read_value = PyUnicode_InternFromString("read_value");
	if (str_read_value == NULL)
		return NULL;
	PyObject *module = PyModule_Create(&kvmexit_module);
	if (module == NULL)
		return NULL;
	if (PyModule_AddIntConstant(module, "KVM_EXIT_MMIO", KVM_EXIT_MMIO) < 0 ||
	    PyModule_AddIntConstant(module, "KVM_EXIT_INTR", KVM_EXIT_INTR) < 0) {
		Py_DECREF(module);
		return NULL;
	}
	return module;
}
