package billing

// directionMethods declares the methods whose handlers are in this file: the reference's
// "Directions and tarification".
func (s *Service) directionMethods() []Method {
	return []Method{
		method("getDirections", 0, s.getDirections, "distinct:bool=true").
			Doc("list all directions", "the system's directions"),
	}
}

// getDirections lists the directions table. With distinct (the default) there is one
// object per direction id, showing its shortest code; without, one per code.
func (s *Service) getDirections(r *Request) (any, error) {
	var rows []struct {
		Code   string `db:"code" json:"code"`
		ID     int64  `db:"id" json:"id"`
		Name   string `db:"name" json:"direction"`
		MinLen int    `db:"min_len" json:"min_len"`
		MaxLen int    `db:"max_len" json:"max_len"`
	}
	if err := s.DB.Q().Select(r.ctx, &rows, `SELECT code, id, name, min_len, max_len FROM directions
		ORDER BY id, length(code), code`); err != nil {
		return nil, err
	}
	out := rows[:0]
	prev := int64(-1)
	for _, d := range rows {
		if r.Bool("distinct") && d.ID == prev {
			continue
		}
		prev = d.ID
		out = append(out, d)
	}
	if out == nil {
		return []struct{}{}, nil
	}
	return out, nil
}
