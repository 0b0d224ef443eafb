package anomaly

// E.164 country codes (ITU-T E.164 and its assignment list) are prefix-free
// and one to three digits long: zones 1 (NANP) and 7 are one digit; in the
// other zones the codes below are two digits and every other code is
// three digits (+212, +353, +420, +591, +670, +852, +880, +971, ...).
// International networks (+800, +808, +870, +878, +881, +882, +883, +888,
// +979) are three-digit codes like any other here.
var twoDigitCodes = [100]bool{
	20: true, 27: true,
	30: true, 31: true, 32: true, 33: true, 34: true, 36: true, 39: true,
	40: true, 41: true, 43: true, 44: true, 45: true, 46: true, 47: true, 48: true, 49: true,
	51: true, 52: true, 53: true, 54: true, 55: true, 56: true, 57: true, 58: true,
	60: true, 61: true, 62: true, 63: true, 64: true, 65: true, 66: true,
	81: true, 82: true, 84: true, 86: true,
	90: true, 91: true, 92: true, 93: true, 94: true, 95: true, 98: true,
}

// CountryCode returns the E.164 country code of number with its '+'
// ("+4930123" -> "+49", "+12125550100" -> "+1", "+8816..." -> "+881"), or
// "" when number is not in E.164 form (an extension, a national number,
// too short to hold a subscriber number after its code).
func CountryCode(number string) string {
	if len(number) < 2 || number[0] != '+' {
		return ""
	}
	for i := 1; i < len(number); i++ {
		if number[i] < '0' || number[i] > '9' {
			return ""
		}
	}
	n := 3
	switch d := number[1]; {
	case d == '0':
		return "" // no code starts with 0
	case d == '1' || d == '7':
		n = 1
	case len(number) >= 3 && twoDigitCodes[int(d-'0')*10+int(number[2]-'0')]:
		n = 2
	}
	if len(number) < 1+n+1 {
		return ""
	}
	return number[:1+n]
}
