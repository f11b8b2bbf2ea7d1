package billing

// declareTariffMethods declares the routing, tariff, direction, bill type and SIP account
// management methods.
func (s *Service) declareTariffMethods() {
	s.Methods.Add()
}
