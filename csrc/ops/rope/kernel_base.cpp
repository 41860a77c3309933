#include "ops/rope/kernel.h"
