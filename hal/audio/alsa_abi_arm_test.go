package audio

// 32-bit ARM (ILP32, EABI): unsigned long and pointers are 4 bytes, so
// snd_pcm_hw_params is 4 bytes shorter, snd_pcm_sw_params 32 bytes, and
// snd_xferi half the size: the request numbers of HW_REFINE, HW_PARAMS,
// SW_PARAMS and the transfers differ from 64-bit ones.
var wantABI = abiFacts{
	hwParamsSize: 604, hwFifoSize: 4, hwSync: 540, hwReserved: 556,
	swParamsSize: 104, swAvailMin: 12, swStartThreshold: 20, swBoundary: 36, swProto: 40, swReserved: 48,
	xferiSize: 12, xferiBuf: 4, xferiFrames: 8,
	requests: map[string][2]uintptr{
		"PVERSION":      {ioctlPVersion, 0x80044100},
		"HW_REFINE":     {ioctlHWRefine, 0xc25c4110},
		"HW_PARAMS":     {ioctlHWParams, 0xc25c4111},
		"SW_PARAMS":     {ioctlSWParams, 0xc0684113},
		"PREPARE":       {ioctlPrepare, 0x4140},
		"DROP":          {ioctlDrop, 0x4143},
		"WRITEI_FRAMES": {ioctlWriteI, 0x400c4150},
		"READI_FRAMES":  {ioctlReadI, 0x800c4151},
	},
}
