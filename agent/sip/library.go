package sip

import "github.com/emiago/sipgo/sip"

func sipgoSetDefaultLogger(l *slogLogger) { sip.SetDefaultLogger(l) }
