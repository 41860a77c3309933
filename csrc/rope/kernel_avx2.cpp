#include "rope/kernel.h"
