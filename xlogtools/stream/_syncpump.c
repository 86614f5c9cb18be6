/*
 * The per-commit loop of a synchronous receiver, in C (optional; receiver.py falls back to
 * its Python path without it, with the same results).
 *
 * A primary waits for a synchronous standby at every commit, so the receiver's time from
 * "bytes arrived" to "flush position sent" is on the primary's commit latency, and its CPU
 * competes with the primary's.  pump() does what the Python path does for the common case,
 * without building an object per message:
 *
 *   read everything the socket holds (non-blocking) into the caller's buffer;
 *   for each complete CopyData message:
 *     'w' XLogData wholly inside the open segment, at the expected position: pwrite it;
 *     'k' primary keepalive: note its WAL end and whether a reply is requested;
 *     anything else (other messages, a segment end, a gap, endpos): stop before it;
 *   then, if anything was written, fdatasync the segment; and if anything was written or a
 *   reply was requested, send a standby status update (write = flush = the new position).
 *
 * Then, when the caller gave a deadline, it waits (poll) for the socket to be readable again
 * and does the next round, until the deadline, max_bytes of WAL, a signal (EINTR), or a
 * round that did not end "drained": commits that come one after another are acknowledged
 * without a trip through the event loop and the Python code between them (which the caller
 * runs after the call: verification, status interval, signals, all due by the deadline).
 * Every message it did not handle is left at the start of the buffer for the Python protocol
 * code; nothing is skipped.
 *
 *   pump(sock, buf, have, segfd, seg_base, seg_size, pos, flush_pos, endpos
 *        [, deadline_us, max_bytes])
 *     sock      socket descriptor (non-blocking)
 *     buf       writable buffer; bytes [0, have) were read before and are not yet handled
 *     segfd     the open segment file; seg_base its first LSN; seg_size its size
 *     pos       LSN where the next WAL byte is expected (= written so far)
 *     flush_pos the durable position so far (reported when only a reply is due)
 *     endpos    stop once pos reaches it (0: no end)
 *     deadline_us  CLOCK_MONOTONIC time (microseconds) until which to go on with more rounds
 *               (0: one round only); max_bytes: stop going on once that much WAL was written
 *   -> (stop, have, pos, wal_end, unsent, err, at, rounds, flushed)
 *     stop      0 drained: the socket had nothing more; 1 a message for the Python path is
 *               at the start of the buffer (another kind, a segment end, a gap, or one
 *               larger than the buffer); 2 end of file; 3 an OS error (err = errno, at =
 *               "recv", "pwrite", "fdatasync" or "send"); 4 endpos reached
 *     have      bytes left at the start of buf
 *     pos       the new written position; when it moved, fdatasync made it durable
 *     wal_end   the largest server WAL end seen (0 if none)
 *     unsent    the part of a status update the socket did not take (the socket buffer was
 *               full): the caller sends it through its transport, in order; b"" when all
 *               went out, and also when no update was due
 *     rounds    how many rounds were done
 *     flushed   the durable position (what the last status update sent reported as flushed)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* microseconds between the Unix epoch and PostgreSQL's (2000-01-01) */
#define PG_EPOCH_OFFSET_US 946684800000000LL
#define XLOGDATA_HDR 25 /* 'w' + start + wal_end + send_time */
#define KEEPALIVE_LEN 18 /* 'k' + wal_end + send_time + reply */

static uint64_t
get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t
get_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static void
put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char) (v & 0xff);
        v >>= 8;
    }
}

/* Consecutive XLogData messages are written with one pwritev: they are contiguous (each
 * starts where the previous ended).  Per pending piece: its message's offset in the buffer
 * and its first LSN, to go back to when a write fails part way. */
#define MAX_PENDING 64
typedef struct {
    Py_ssize_t off;
    uint64_t start;
} PendingMsg;

/* Write the pending pieces (all at once; again from where a short write stopped).  1 when
 * all were written, and none is pending any more.  Else 0 with *err = errno, and *pos / *off
 * back at the first piece not wholly written: its message stays in the buffer for the
 * Python path, which writes it again (the same bytes at the same place). */
static int
write_pending(int segfd, uint64_t seg_base, struct iovec *iov, const PendingMsg *msgs,
              int *np, unsigned long long *pos, Py_ssize_t *off, int *err)
{
    int n = *np, i = 0;
    size_t skip = 0; /* bytes of iov[i] already written */
    *np = 0;
    while (i < n) {
        struct iovec v[MAX_PENDING];
        int k = 0;
        for (int j = i; j < n; j++, k++)
            v[k] = iov[j];
        v[0].iov_base = (char *) v[0].iov_base + skip;
        v[0].iov_len -= skip;
        off_t foff = (off_t) (msgs[i].start - seg_base + skip);
        ssize_t w = pwritev(segfd, v, k, foff);
        if (w == 0)
            errno = ENOSPC; /* no progress: do not spin */
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            *err = errno;
            *pos = msgs[i].start;
            *off = msgs[i].off;
            return 0;
        }
        size_t done = (size_t) w;
        while (i < n && done >= iov[i].iov_len - skip) {
            done -= iov[i].iov_len - skip;
            skip = 0;
            i++;
        }
        skip += done;
    }
    return 1;
}

enum { DRAINED = 0, FOR_PYTHON = 1, END_OF_FILE = 2, OS_ERROR = 3, ENDPOS = 4 };

static PyObject *
pump(PyObject *self, PyObject *args)
{
    int sock, segfd;
    Py_buffer view;
    Py_ssize_t have;
    unsigned long long seg_base, seg_size, pos, flush_pos, endpos;
    unsigned long long deadline_us = 0, max_bytes = 0;

    if (!PyArg_ParseTuple(args, "iw*niKKKKK|KK", &sock, &view, &have, &segfd, &seg_base,
                          &seg_size, &pos, &flush_pos, &endpos, &deadline_us, &max_bytes))
        return NULL;
    unsigned char *buf = view.buf;
    Py_ssize_t cap = view.len;
    if (have < 0 || have > cap || seg_size == 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pump: bad buffer fill or segment size");
        return NULL;
    }

    int stop = DRAINED, err = 0, flushed, reply, unsent_from = 39, rounds = 0;
    const char *at = "";
    unsigned char msg[39];
    uint64_t wal_end = 0, first_pos = pos, start_pos;
    Py_ssize_t off; /* first unhandled byte */
    int more;       /* the socket may hold more */
    struct iovec pend[MAX_PENDING]; /* XLogData not yet written: contiguous, from buf */
    PendingMsg pend_msg[MAX_PENDING];
    int npend = 0;

    Py_BEGIN_ALLOW_THREADS
next_round:
    rounds++;
    flushed = reply = 0;
    start_pos = pos;
    off = 0;
    more = 1;
    for (;;) {
        /* handle the complete messages in [off, have) */
        while (have - off >= 5) {
            unsigned char *m = buf + off;
            uint32_t len = get_be32(m + 1); /* counts itself, not the type byte */
            if (m[0] != 'd' || len < 5) {
                stop = FOR_PYTHON;
                break;
            }
            if ((Py_ssize_t) len + 1 > cap) { /* larger than the buffer: the Python path */
                stop = FOR_PYTHON;
                break;
            }
            if ((Py_ssize_t) len + 1 > have - off)
                break; /* not all here yet */
            unsigned char *body = m + 5;
            size_t blen = len - 4;
            if (blen >= XLOGDATA_HDR && body[0] == 'w') {
                uint64_t start = get_be64(body + 1);
                uint64_t end = get_be64(body + 9);
                size_t n = blen - XLOGDATA_HDR;
                if (start != pos || start < seg_base || start - seg_base + n >= seg_size) {
                    stop = FOR_PYTHON; /* a gap, a new segment, or the segment's end */
                    break;
                }
                if (n) {
                    /* contiguous with what is pending (start == pos): one pwritev later */
                    if (npend == MAX_PENDING && !write_pending(segfd, seg_base, pend, pend_msg,
                                                               &npend, &pos, &off, &err)) {
                        stop = OS_ERROR;
                        at = "pwrite";
                        break;
                    }
                    pend[npend].iov_base = body + XLOGDATA_HDR;
                    pend[npend].iov_len = n;
                    pend_msg[npend].off = off;
                    pend_msg[npend].start = start;
                    npend++;
                }
                pos = start + n;
                if (end > wal_end)
                    wal_end = end;
            } else if (blen == KEEPALIVE_LEN && body[0] == 'k') {
                uint64_t end = get_be64(body + 1);
                if (end > wal_end)
                    wal_end = end;
                if (body[17])
                    reply = 1;
            } else {
                stop = FOR_PYTHON;
                break;
            }
            off += (Py_ssize_t) len + 1;
            if (endpos && pos >= endpos) {
                stop = ENDPOS;
                break;
            }
        }
        if (stop != DRAINED || !more)
            break;
        /* the pending writes point into buf: write them before it moves */
        if (npend && !write_pending(segfd, seg_base, pend, pend_msg, &npend, &pos, &off, &err)) {
            stop = OS_ERROR;
            at = "pwrite";
            break;
        }
        /* keep the unhandled rest at the front, then read what the socket holds */
        if (off) {
            memmove(buf, buf + off, (size_t) (have - off));
            have -= off;
            off = 0;
        }
        if (have == cap) { /* cannot happen: a message fits (checked above) */
            stop = FOR_PYTHON;
            break;
        }
        ssize_t r = recv(sock, buf + have, (size_t) (cap - have), 0);
        if (r > 0) {
            /* a read that did not fill the buffer took all the socket held: handle it and
               stop, rather than spend a call on the EAGAIN (what arrives meanwhile is the
               next round's) */
            if (r < cap - have)
                more = 0;
            have += r;
            continue;
        }
        if (r == 0) {
            stop = END_OF_FILE;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            more = 0; /* handle what is complete, then stop */
            continue;
        }
        stop = OS_ERROR;
        err = errno;
        at = "recv";
        break;
    }
    if (npend && stop != OS_ERROR
        && !write_pending(segfd, seg_base, pend, pend_msg, &npend, &pos, &off, &err)) {
        stop = OS_ERROR;
        at = "pwrite";
    }
    npend = 0;
    if (off) {
        memmove(buf, buf + off, (size_t) (have - off));
        have -= off;
    }
    if (stop != OS_ERROR && pos != start_pos) {
        if (fdatasync(segfd) != 0) {
            stop = OS_ERROR;
            err = errno;
            at = "fdatasync";
        } else {
            flushed = 1;
        }
    }
    if (flushed)
        flush_pos = pos;
    if (stop != OS_ERROR && stop != END_OF_FILE && (flushed || reply)) {
        /* standby status update: 'd' len 'r' write flush apply(0) time reply(0) */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - PG_EPOCH_OFFSET_US;
        msg[0] = 'd';
        msg[1] = 0; msg[2] = 0; msg[3] = 0; msg[4] = 38;
        msg[5] = 'r';
        put_be64(msg + 6, pos);
        put_be64(msg + 14, flush_pos);
        put_be64(msg + 22, 0);
        put_be64(msg + 30, (uint64_t) now);
        msg[38] = 0;
        ssize_t w;
        do {
            w = send(sock, msg, sizeof msg, MSG_NOSIGNAL);
        } while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            stop = OS_ERROR;
            err = errno;
            at = "send";
        } else {
            unsent_from = w < 0 ? 0 : (int) w; /* the rest goes out through the transport */
        }
    }
    if (stop == DRAINED && deadline_us && unsent_from == (int) sizeof msg
        && (!max_bytes || pos - first_pos < max_bytes)) {
        /* go on while the caller's work is not due: wait for the next commit's WAL */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t t = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
        if (t < deadline_us) {
            int ms = (int) ((deadline_us - t + 999) / 1000);
            struct pollfd pfd = {sock, POLLIN, 0};
            if (poll(&pfd, 1, ms) == 1)
                goto next_round; /* readable (or an error/hang-up, which the read reports) */
        }
        /* the deadline, or a signal (EINTR): back to the caller */
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    return Py_BuildValue("(inKKy#isiK)", stop, have, (unsigned long long) pos,
                         (unsigned long long) wal_end, (const char *) msg + unsent_from,
                         (Py_ssize_t) (sizeof msg - (size_t) unsent_from), err, at, rounds,
                         (unsigned long long) flush_pos);
}

static PyMethodDef methods[] = {
    {"pump", pump, METH_VARARGS,
     "One round of a synchronous receiver: read, write, fdatasync, report (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_syncpump", "The per-commit loop of a synchronous receiver.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__syncpump(void)
{
    return PyModule_Create(&module);
}
