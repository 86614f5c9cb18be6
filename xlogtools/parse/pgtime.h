/* pgtime.h: a PostgreSQL timestamp (int64 microseconds since 2000-01-01 00:00:00 UTC) split
 * into its calendar fields, as timestamp2tm() of utils/adt/timestamp.c does for a value in UTC,
 * with j2date() of utils/adt/datetime.c. The one home of this arithmetic for the C extensions:
 * _walscan's time_texts (commit times of dump's exports) and _deform's timestamp output
 * (replay's values); Python's is xlogtools/replay/types.py's. */
#ifndef XLOGTOOLS_PGTIME_H
#define XLOGTOOLS_PGTIME_H

#include <stdint.h>

#define PG_USECS_PER_DAY INT64_C(86400000000)
#define PG_EPOCH_JDATE 2451545 /* date2j(2000, 1, 1) */

typedef struct {
    int64_t year; /* <= 0 for a year BC (0 is 1 BC, as j2date gives it) */
    int month, day, hour, minute, second, usec;
} PgTm;

/* floor division and the remainder of that floor (a timestamp before 2000 has a negative
 * day number and a non-negative time of day) */
static inline int64_t pg_floordiv(int64_t a, int64_t b, int64_t *rem)
{
    int64_t q = a / b, r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) {
        q -= 1;
        r += b;
    }
    *rem = r;
    return q;
}

/* j2date() for a Julian day number jd >= 0 (4714-11-24 BC and later) */
static inline void pg_j2date(int64_t jd, int64_t *year, int *month, int *day)
{
    int64_t julian = jd + 32044, quad, extra, y;
    quad = julian / 146097;
    extra = (julian - quad * 146097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146097;
    quad = julian / 1461;
    julian -= quad * 1461;
    y = julian * 4 / 1461;
    julian = (y != 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123;
    y += quad * 4;
    quad = julian * 2141 / 65536;
    *year = y - 4800;
    *month = (int)((quad + 10) % 12 + 1);
    *day = (int)(julian - 7834 * quad / 256);
}

/* ts's fields in UTC; ts must be a finite timestamp at or after 4714-11-24 BC */
static inline void pg_ts2tm(int64_t ts, PgTm *tm)
{
    int64_t t;
    int64_t date = pg_floordiv(ts, PG_USECS_PER_DAY, &t);
    pg_j2date(date + PG_EPOCH_JDATE, &tm->year, &tm->month, &tm->day);
    tm->hour = (int)(t / INT64_C(3600000000));
    t -= (int64_t)tm->hour * INT64_C(3600000000);
    tm->minute = (int)(t / 60000000);
    t -= (int64_t)tm->minute * 60000000;
    tm->second = (int)(t / 1000000);
    tm->usec = (int)(t % 1000000);
}

#endif
