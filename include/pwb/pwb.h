/* pwb/pwb.h - personalisation within bounds: the whole public API. */
#ifndef PWB_PWB_H
#define PWB_PWB_H

#include "pwb/bounds.h"
#include "pwb/common.h"
#include "pwb/engine.h"
#include "pwb/pipeline.h"
#include "pwb/report.h"
#include "pwb/server.h"
#include "pwb/policy.h"
#include "pwb/prefs.h"
#include "pwb/store.h"

#endif
