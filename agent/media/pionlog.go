package media

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/logging"
)

// pionLogFactory routes pion's logs into the session's slog logger. pion
// logs per-packet detail at debug and trace, which stays at slog debug; its
// warnings and errors are at most slog warnings, since every failure that
// matters also comes back to us as an error.
type pionLogFactory struct{ log *slog.Logger }

func (f *pionLogFactory) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l *pionLogger) at(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l *pionLogger) Trace(msg string) { l.at(slog.LevelDebug-4, msg) }
func (l *pionLogger) Tracef(format string, args ...any) {
	l.at(slog.LevelDebug-4, fmt.Sprintf(format, args...))
}
func (l *pionLogger) Debug(msg string) { l.at(slog.LevelDebug, msg) }
func (l *pionLogger) Debugf(format string, args ...any) {
	l.at(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l *pionLogger) Info(msg string) { l.at(slog.LevelDebug, msg) }
func (l *pionLogger) Infof(format string, args ...any) {
	l.at(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l *pionLogger) Warn(msg string) { l.at(slog.LevelInfo, msg) }
func (l *pionLogger) Warnf(format string, args ...any) {
	l.at(slog.LevelInfo, fmt.Sprintf(format, args...))
}
func (l *pionLogger) Error(msg string) { l.at(slog.LevelWarn, msg) }
func (l *pionLogger) Errorf(format string, args ...any) {
	l.at(slog.LevelWarn, fmt.Sprintf(format, args...))
}

// rateLimit logs per-packet conditions at most once per interval per kind:
// the counters in Stats carry the totals.
type rateLimit struct {
	log   *slog.Logger
	every time.Duration
	mu    sync.Mutex // guards last
	last  map[string]time.Time
}

func newRateLimit(log *slog.Logger, every time.Duration) *rateLimit {
	return &rateLimit{log: log, every: every, last: map[string]time.Time{}}
}

func (r *rateLimit) warn(kind, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if t, ok := r.last[kind]; ok && now.Sub(t) < r.every {
		r.mu.Unlock()
		return
	}
	r.last[kind] = now
	r.mu.Unlock()
	r.log.Warn(msg, append(args, "kind", kind)...)
}
