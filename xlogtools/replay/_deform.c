/* Replay's hot loop in C: deform a heap tuple whose bytes are all known and render the
 * columns of the commonest built-in types as psql prints them (xlogtools/replay/tuples.py's
 * _deform_known and types.py's SCALAR_OUT for bool, int2/4/8, oid/xid/cid, text/varchar/
 * bpchar in UTF8, timestamp, and timestamptz when the time zone is UTC).
 *
 * deform_render(tup, plan, missing) -> (datums, texts) or None
 *   plan: a tuple of (attlen, alignment mask, kind) per column (dropped ones included)
 *   datums: as _deform_known returns them (bytes, None for NULL, `missing` past natts)
 *   texts: the rendered text of each plain value whose kind is rendered here, else None
 * None means "not here": a header that does not add up, a TOAST pointer, a compressed or
 * otherwise unusual varlena, a C string column, bytes past the end. The caller then runs
 * the Python deformer on that tuple, which gives the same values or raises its errors.
 * Every read is bounds-checked: a record with a valid CRC can hold any bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pgtime.h"

#define HDR 23
#define K_NONE 0
#define K_BOOL 1
#define K_INT2 2
#define K_INT4 3
#define K_INT8 4
#define K_UINT4 5
#define K_TEXT 6
#define K_TIMESTAMP 7
#define K_TIMESTAMPTZ_UTC 8 /* timestamptz printed in UTC: "+00" */

#define MIN_TIMESTAMP INT64_C(-211813488000000000)
#define END_TIMESTAMP INT64_C(9223371331200000000)

/* timestamp_out (types.py's _timestamp) of a value; NULL for one out of range */
static PyObject *timestamp_text(int64_t v, int utc)
{
    char buf[96];
    int64_t year, ys;
    int month, day, n, bc;
    if (v == INT64_MIN) return PyUnicode_FromString("-infinity");
    if (v == INT64_MAX) return PyUnicode_FromString("infinity");
    if (v < MIN_TIMESTAMP || v >= END_TIMESTAMP) return NULL;
    PgTm tm;
    pg_ts2tm(v, &tm);
    year = tm.year;
    month = tm.month;
    day = tm.day;
    bc = year <= 0;
    ys = bc ? -(year - 1) : year;
    int64_t hour = tm.hour, minute = tm.minute, sec = tm.second, fsec = tm.usec;
    n = snprintf(buf, sizeof buf, "%04lld-%02d-%02d %02lld:%02lld:%02lld", (long long)ys, month,
                 day, (long long)hour, (long long)minute, (long long)sec);
    if (n < 0 || n >= 64) return NULL;
    if (fsec) {
        char f[8];
        int k = 6;
        snprintf(f, sizeof f, "%06lld", (long long)fsec);
        while (k > 0 && f[k - 1] == '0') k--;
        buf[n++] = '.';
        memcpy(buf + n, f, (size_t)k);
        n += k;
    }
    if (utc) {
        memcpy(buf + n, "+00", 3);
        n += 3;
    }
    if (bc) {
        memcpy(buf + n, " BC", 3);
        n += 3;
    }
    return PyUnicode_FromStringAndSize(buf, n);
}

static inline uint32_t rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static PyObject *render(int kind, const unsigned char *p, Py_ssize_t len)
{
    char buf[32];
    int n;
    switch (kind) {
    case K_BOOL:
        if (len != 1) return NULL;
        return PyUnicode_FromStringAndSize(p[0] ? "t" : "f", 1);
    case K_INT2: {
        int16_t v;
        if (len != 2) return NULL;
        v = (int16_t)((uint16_t)p[0] | ((uint16_t)p[1] << 8));
        n = snprintf(buf, sizeof buf, "%d", (int)v);
        break;
    }
    case K_INT4: {
        if (len != 4) return NULL;
        n = snprintf(buf, sizeof buf, "%ld", (long)(int32_t)rd_u32(p));
        break;
    }
    case K_UINT4: {
        if (len != 4) return NULL;
        n = snprintf(buf, sizeof buf, "%lu", (unsigned long)rd_u32(p));
        break;
    }
    case K_INT8: {
        uint64_t u;
        if (len != 8) return NULL;
        u = (uint64_t)rd_u32(p) | ((uint64_t)rd_u32(p + 4) << 32);
        n = snprintf(buf, sizeof buf, "%lld", (long long)(int64_t)u);
        break;
    }
    case K_TIMESTAMP:
    case K_TIMESTAMPTZ_UTC: {
        uint64_t u;
        if (len != 8) return NULL;
        u = (uint64_t)rd_u32(p) | ((uint64_t)rd_u32(p + 4) << 32);
        return timestamp_text((int64_t)u, kind == K_TIMESTAMPTZ_UTC);
    }
    case K_TEXT: {
        PyObject *s = PyUnicode_DecodeUTF8((const char *)p, len, NULL);
        if (s == NULL) PyErr_Clear(); /* Python's path says what it is */
        return s;
    }
    default:
        return NULL;
    }
    if (n < 0 || n >= (int)sizeof buf) return NULL;
    return PyUnicode_FromStringAndSize(buf, n);
}

static PyObject *deform_render(PyObject *self, PyObject *args)
{
    PyObject *tupobj, *plan, *missing;
    Py_buffer view;
    PyObject *datums = NULL, *texts = NULL, *result = NULL;
    if (!PyArg_ParseTuple(args, "OO!O", &tupobj, &PyTuple_Type, &plan, &missing))
        return NULL;
    if (PyObject_GetBuffer(tupobj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *t = (const unsigned char *)view.buf;
    Py_ssize_t n = view.len;
    Py_ssize_t ncols = PyTuple_GET_SIZE(plan);
    if (n < HDR) goto fallback;
    {
        unsigned im2 = (unsigned)t[18] | ((unsigned)t[19] << 8);
        unsigned im = (unsigned)t[20] | ((unsigned)t[21] << 8);
        Py_ssize_t hoff = t[22];
        Py_ssize_t natts = im2 & 0x07FF;
        int hasnull = im & 0x0001;
        if (hoff > n || hoff < HDR) goto fallback;
        if (natts > ncols) goto fallback;
        if (hasnull && HDR + (natts + 7) / 8 > hoff) goto fallback;
        datums = PyList_New(ncols);
        texts = PyList_New(ncols);
        if (datums == NULL || texts == NULL) goto error;
        Py_ssize_t off = hoff;
        for (Py_ssize_t i = 0; i < ncols; i++) {
            PyObject *spec = PyTuple_GET_ITEM(plan, i);
            if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 3) goto fallback;
            long attlen = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
            long amask = PyLong_AsLong(PyTuple_GET_ITEM(spec, 1));
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 2));
            if (PyErr_Occurred()) goto error;
            if (amask < 0 || amask > 7) goto fallback;
            if (i >= natts) {
                Py_INCREF(missing);
                PyList_SET_ITEM(datums, i, missing);
                Py_INCREF(Py_None);
                PyList_SET_ITEM(texts, i, Py_None);
                continue;
            }
            if (hasnull && !((t[HDR + (i >> 3)] >> (i & 7)) & 1)) {
                Py_INCREF(Py_None);
                PyList_SET_ITEM(datums, i, Py_None);
                Py_INCREF(Py_None);
                PyList_SET_ITEM(texts, i, Py_None);
                continue;
            }
            const unsigned char *p;
            Py_ssize_t len;
            if (attlen > 0) {
                off = (off + amask) & ~(Py_ssize_t)amask;
                if (off > n || attlen > n - off) goto fallback;
                p = t + off;
                len = attlen;
                off += attlen;
            } else if (attlen == -1) {
                if (off >= n) goto fallback;
                unsigned first = t[off];
                if ((first & 0x01) && first != 0x01) { /* short varlena */
                    Py_ssize_t size = first >> 1;
                    if (size > n - off) goto fallback;
                    p = t + off + 1;
                    len = size - 1;
                    off += size;
                } else {
                    if (first == 0x01) goto fallback; /* TOAST pointer */
                    if (first == 0) off = (off + amask) & ~(Py_ssize_t)amask;
                    if (off > n || n - off < 4) goto fallback;
                    if ((t[off] & 0x03) != 0) goto fallback; /* compressed, or odd */
                    Py_ssize_t size = (Py_ssize_t)(rd_u32(t + off) >> 2);
                    if (size < 4 || size > n - off) goto fallback;
                    p = t + off + 4;
                    len = size - 4;
                    off += size;
                }
            } else {
                goto fallback; /* C strings and anything else: Python's */
            }
            PyObject *d = PyBytes_FromStringAndSize((const char *)p, len);
            if (d == NULL) goto error;
            PyList_SET_ITEM(datums, i, d);
            PyObject *s = kind != K_NONE ? render((int)kind, p, len) : NULL;
            if (s == NULL) {
                if (PyErr_Occurred()) goto error;
                Py_INCREF(Py_None);
                s = Py_None;
            }
            PyList_SET_ITEM(texts, i, s);
        }
    }
    result = PyTuple_Pack(2, datums, texts);
    Py_DECREF(datums);
    Py_DECREF(texts);
    PyBuffer_Release(&view);
    return result;
fallback:
    Py_XDECREF(datums);
    Py_XDECREF(texts);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
error:
    Py_XDECREF(datums);
    Py_XDECREF(texts);
    PyBuffer_Release(&view);
    return NULL;
}

/* timestamptz_out in UTC of microseconds since 2000-01-01 (types.timestamptz_usecs_out
 * without a context); None when out of PostgreSQL's range */
static PyObject *timestamptz_utc(PyObject *self, PyObject *arg)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (overflow) Py_RETURN_NONE;
    PyObject *s = timestamp_text((int64_t)v, 1);
    if (s == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return s;
}

static PyMethodDef methods[] = {
    {"timestamptz_utc", timestamptz_utc, METH_O,
     "timestamptz_utc(usecs) -> its text in UTC, or None when out of range"},
    {"deform_render", deform_render, METH_VARARGS,
     "deform_render(tup, plan, missing) -> (datums, texts) or None (use the Python path)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_deform",
                                    "Heap tuple deforming and rendering of common types", -1,
                                    methods};

PyMODINIT_FUNC PyInit__deform(void) { return PyModule_Create(&module); }
