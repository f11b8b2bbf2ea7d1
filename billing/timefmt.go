package billing

import "time"

// timeLayout is how the reference writes dates: YYYY-MM-DD HH:MM:SS.
const timeLayout = "2006-01-02 15:04:05"

// formatTime shows Unix seconds in UTC shifted by a user's timezone in hours; 0 is "".
func formatTime(unix int64, tzHours float64) string {
	if unix == 0 {
		return ""
	}
	return time.Unix(unix, 0).UTC().Add(time.Duration(tzHours * float64(time.Hour))).Format(timeLayout)
}
