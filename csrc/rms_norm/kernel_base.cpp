#include "rms_norm/kernel.h"
