package audio

// x86-64 (LP64): unsigned long and pointers are 8 bytes, 8-aligned.
var wantABI = abiFacts{
	hwParamsSize: 608, hwFifoSize: 8, hwSync: 544, hwReserved: 560,
	swParamsSize: 136, swAvailMin: 16, swStartThreshold: 32, swBoundary: 64, swProto: 72, swReserved: 80,
	xferiSize: 24, xferiBuf: 8, xferiFrames: 16,
	requests: map[string][2]uintptr{
		"PVERSION":      {ioctlPVersion, 0x80044100},
		"HW_REFINE":     {ioctlHWRefine, 0xc2604110},
		"HW_PARAMS":     {ioctlHWParams, 0xc2604111},
		"SW_PARAMS":     {ioctlSWParams, 0xc0884113},
		"PREPARE":       {ioctlPrepare, 0x4140},
		"DROP":          {ioctlDrop, 0x4143},
		"WRITEI_FRAMES": {ioctlWriteI, 0x40184150},
		"READI_FRAMES":  {ioctlReadI, 0x80184151},
	},
}
