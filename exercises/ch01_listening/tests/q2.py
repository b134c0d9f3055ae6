OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> OWN = dict(allow=['demucs_course.oracles.stft', 'demucs_course.oracles.istft'])\n"
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> s = torch.randn(3, 2, 20000) * torch.tensor([1.0, 0.5, 0.2])[:, None, None]\n'
                                               '>>> with own_work(**OWN):\n'
                                               '...     e = irm_estimates(s)\n'
                                               ">>> assert e.shape == s.shape, f'expected shape {tuple(s.shape)}, got {tuple(e.shape)}'\n"
                                               ">>> assert torch.allclose(e.sum(0), s.sum(0), atol=0.001), 'IRM masks add up to one: the estimates add up to the mixture'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
